"""Every size and knob of the benchmark, in one place: the full run and the `--quick` one."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Knobs:
    repetitions: int = 3
    # 1. blob download, 2. monolithic upload (one client, curl).
    blob_bytes: int = GiB
    # 3. chunked upload.
    chunked_bytes: int = 256 * MiB
    chunk_bytes: int = 8 * MiB
    # 4. skopeo copy push + pull.
    skopeo_layers: int = 5
    skopeo_layer_bytes: int = 20 * MiB
    # 5. manifest GET by tag (wrk).
    get_connections: int = 32
    get_seconds: int = 10
    # 6. manifest PUT of small images (wrk).
    put_connections: int = 8
    put_seconds: int = 5
    wrk_threads: int = 2
    # 7. listing: tags/list and _catalog.
    tags: int = 10_000
    catalog_repositories: int = 10_000
    page_size: int = 100
    seed_concurrency: int = 16
    list_samples: int = 9  # timed requests per repetition (median taken)
    catalog_full_samples: int = 1
    # 8. concurrent clients.
    clients: int = 50
    images_per_client: int = 4
    client_layer_bytes: int = 64 * 1024
    # 9. RSS sampling interval during scenarios 1-3.
    rss_interval: float = 0.05
    # 10-12. pulls (benchmarks/pulls.py): skopeo push + warm/cold pull of a big image, blob
    # GET samples (of blob_bytes) warm and cold per repetition, the pull storm.
    big_image_layers: int = 4
    big_image_layer_bytes: int = 256 * MiB
    blob_get_samples: int = 5
    blob_get_cold_samples: int = 3
    storm_clients: int = 50
    storm_layers: int = 5
    storm_layer_bytes: int = 20 * MiB
    # Start-up and per-request limits.
    start_timeout: float = 60.0
    request_timeout: float = 600.0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


FULL = Knobs()

# Only shows every scenario runs end to end (tests/test_benchmark_quick.py): the smallest sizes
# that still take each path (several chunks, paged listings, concurrent clients).
QUICK = Knobs(
    repetitions=1,
    blob_bytes=16 * MiB,
    chunked_bytes=16 * MiB,
    chunk_bytes=4 * MiB,
    skopeo_layer_bytes=1 * MiB,
    get_seconds=1,
    put_seconds=1,
    tags=100,
    catalog_repositories=100,
    page_size=40,
    list_samples=3,
    catalog_full_samples=1,
    clients=20,
    images_per_client=1,
    client_layer_bytes=16 * 1024,
    big_image_layers=2,
    big_image_layer_bytes=2 * MiB,
    blob_get_samples=2,
    blob_get_cold_samples=1,
    storm_clients=20,
    storm_layers=4,
    storm_layer_bytes=256 * 1024,
    start_timeout=30.0,
    request_timeout=60.0,
)
