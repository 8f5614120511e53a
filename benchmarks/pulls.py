"""Pull scenarios of issue 19: a skopeo pull right after the push and from cold, a 1 GiB blob
GET warm and cold with its spread, and a storm of concurrent pulls of one image.

Wall figures on a shared machine are noisy, so each run also records what load does not move
much: the CPU seconds the registry's process tree spent (utime + stime from /proc) and the
MiB it served per CPU second, the load average at the time, and how much of the registry's
data sat in the page cache before the pull (`fincore`).

"Cold" means: `sync`, then `posix_fadvise(POSIX_FADV_DONTNEED)` on every file under the
registry's data directory, for each registry alike (clean pages only, hence the sync). It
needs no root and leaves the rest of the shared machine's page cache alone; `cold_method` in
the JSON says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from benchmarks import client as cl
from benchmarks.config import MiB
from benchmarks.registries import Registry, process_tree
from benchmarks.scenarios import (
    Context,
    Metric,
    Scenario,
    ScenarioError,
    _curl_auth,
    _random_file,
    _rewrite_prefix,
    _run,
    build_image,
    curl_upload,
    median,
)

COLD_METHOD = "sync + posix_fadvise(DONTNEED) on every file of the registry's data dir"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(registry: Registry) -> float:
    """utime + stime of the registry's process tree so far."""
    total = 0
    for pid in process_tree(registry.pid):
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def data_dir(registry: Registry) -> Path:
    """Everything the registry stores (its data, database and log) is under here."""
    return registry.workdir


def _files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]


def evict(registries: list[Registry]) -> None:
    """Push every file of the registries' data out of the page cache (see the docstring)."""
    os.sync()
    for registry in registries:
        for path in _files(data_dir(registry)):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def resident_mib(registry: Registry) -> float | None:
    """MiB of the registry's data files in the page cache (`fincore`), None without it."""
    files = [str(p) for p in _files(data_dir(registry)) if p.stat().st_size]
    if not files or shutil.which("fincore") is None:
        return None
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", *files],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return sum(int(x) for x in out.stdout.split() if x.isdigit()) / MiB


def _note(ctx: Context, key: str, registry: Registry, rep: int, **values: object) -> None:
    """Per-run details (load average, spread) for the JSON, beside the medians."""
    runs = ctx.shared.setdefault(f"pull_notes_{key}", [])
    assert isinstance(runs, list)
    runs.append({"registry": registry.name, "rep": rep, "load1": os.getloadavg()[0], **values})


class _Measured:
    """Wall and server CPU seconds of one step."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __enter__(self) -> _Measured:
        self.cpu = cpu_seconds(self.registry)
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.started
        self.cpu = cpu_seconds(self.registry) - self.cpu


class PullScenario(Scenario):
    """Collects the per-run notes into the report (`report`, read by run.py)."""

    def report(self, ctx: Context) -> dict[str, object]:
        return {"cold_method": COLD_METHOD, "runs": ctx.shared.get(f"pull_notes_{self.key}", [])}


# -- skopeo pull right after the push, then cold -------------------------------------------


class PullAfterPush(PullScenario):
    key = "pull_after_push"
    title = "10. skopeo push, pull right after it (warm), pull from cold"
    metrics = (
        Metric("push_s", "push", "s", "lower"),
        Metric("warm_pull_s", "pull right after the push", "s", "lower"),
        Metric("cold_pull_s", "pull, page cache dropped", "s", "lower"),
        Metric("warm_cpu_s", "server CPU, warm pull", "CPU s", "lower"),
        Metric("cold_cpu_s", "server CPU, cold pull", "CPU s", "lower"),
    )

    def prepare_rep(self, ctx: Context, rep: int) -> None:
        layout = ctx.workdir / f"big-image-{rep}"
        shutil.rmtree(layout, ignore_errors=True)
        k = ctx.knobs
        build_image(layout, [k.big_image_layer_bytes] * k.big_image_layers)
        ctx.shared["big_layout"] = layout
        old = ctx.workdir / f"big-image-{rep - 1}"
        shutil.rmtree(old, ignore_errors=True)

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        skopeo = shutil.which("skopeo")
        if skopeo is None:
            raise ScenarioError("skopeo is not installed")
        timeout = ctx.knobs.request_timeout
        creds = ["--dest-creds", ":".join(registry.auth)] if registry.auth else []
        ref = f"docker://{registry.host}/bench/pull{rep}:latest"
        # From an empty cache, so the residency after the push is what the push left there.
        evict([registry])
        with _Measured(registry) as push:
            _run(
                [skopeo, "copy", "-q", "--dest-tls-verify=false", *creds,
                 f"oci:{ctx.shared['big_layout']}:latest", ref],
                timeout,
            )  # fmt: skip
        cached_after_push = resident_mib(registry)
        warm = self._pull(ctx, registry, ref, "warm")
        evict([registry])
        cached_cold = resident_mib(registry)
        cold = self._pull(ctx, registry, ref, "cold")
        _note(
            ctx,
            self.key,
            registry,
            rep,
            resident_mib_after_push=cached_after_push,
            resident_mib_after_evict=cached_cold,
        )
        return {
            "push_s": push.wall,
            "warm_pull_s": warm.wall,
            "cold_pull_s": cold.wall,
            "warm_cpu_s": warm.cpu,
            "cold_cpu_s": cold.cpu,
        }

    @staticmethod
    def _pull(ctx: Context, registry: Registry, ref: str, label: str) -> _Measured:
        skopeo = shutil.which("skopeo")
        assert skopeo is not None
        creds = ["--src-creds", ":".join(registry.auth)] if registry.auth else []
        target = ctx.workdir / f"pulled-{registry.name}-{label}"
        shutil.rmtree(target, ignore_errors=True)
        try:
            with _Measured(registry) as pull:
                _run(
                    [skopeo, "copy", "-q", "--src-tls-verify=false", *creds, ref,
                     f"oci:{target}:latest"],
                    ctx.knobs.request_timeout,
                )  # fmt: skip
        finally:
            shutil.rmtree(target, ignore_errors=True)
        return pull


# -- 1 GiB blob GET, warm and cold, several samples ----------------------------------------


class BlobGet(PullScenario):
    key = "blob_get"
    title = "11. Blob GET, 1 GiB (curl), warm and cold"
    metrics = (
        Metric("warm_mib_s", "warm (in page cache), median", "MiB/s", "higher"),
        Metric("cold_mib_s", "cold (evicted), median", "MiB/s", "higher"),
        Metric("warm_mib_per_cpu_s", "warm, MiB per server CPU s", "MiB/CPU s", "higher"),
        Metric("cold_mib_per_cpu_s", "cold, MiB per server CPU s", "MiB/CPU s", "higher"),
    )
    repo = "bench/blobget"

    def setup(self, ctx: Context, registry: Registry) -> None:
        if "blobget_file" not in ctx.shared:
            path = ctx.workdir / "blobget.bin"
            _random_file(path, ctx.knobs.blob_bytes)
            ctx.shared["blobget_file"] = path
            ctx.shared["blobget_digest"] = _rewrite_prefix(path, os.urandom(32))
        path, digest = ctx.shared["blobget_file"], ctx.shared["blobget_digest"]
        curl_upload(ctx, registry, self.repo, path, digest)  # type: ignore[arg-type]

    def _get(self, ctx: Context, registry: Registry) -> tuple[float, float]:
        digest = ctx.shared["blobget_digest"]
        with _Measured(registry) as get:
            out = _run(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                 *_curl_auth(registry), f"{registry.url}/v2/{self.repo}/blobs/{digest}"],
                ctx.knobs.request_timeout,
            )  # fmt: skip
        code, size = out.split()
        if code != "200" or int(size) != ctx.knobs.blob_bytes:
            raise ScenarioError(f"download answered {code} with {size} bytes")
        mib = int(size) / MiB
        return mib / get.wall, mib / max(get.cpu, 1 / _TICK)

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        k = ctx.knobs
        self._get(ctx, registry)  # untimed: the blob is in the page cache from here on
        warm = [self._get(ctx, registry) for _ in range(k.blob_get_samples)]
        cold = []
        for _ in range(k.blob_get_cold_samples):
            evict([registry])
            cold.append(self._get(ctx, registry))
        _note(
            ctx,
            self.key,
            registry,
            rep,
            warm_mib_s=[round(w, 1) for w, _ in warm],
            cold_mib_s=[round(c, 1) for c, _ in cold],
        )
        return {
            "warm_mib_s": median([w for w, _ in warm]),
            "cold_mib_s": median([c for c, _ in cold]),
            "warm_mib_per_cpu_s": median([c for _, c in warm]),
            "cold_mib_per_cpu_s": median([c for _, c in cold]),
        }


# -- pull storm ------------------------------------------------------------------------------


class PullStorm(PullScenario):
    key = "pull_storm"
    title = "12. Pull storm: concurrent clients pulling one image (curl, every blob)"
    metrics = (
        Metric("mib_s", "aggregate throughput", "MiB/s", "higher"),
        Metric("p99_s", "p99 client completion", "s", "lower"),
        Metric("p50_s", "median client completion", "s", "lower"),
        Metric("mib_per_cpu_s", "MiB per server CPU s", "MiB/CPU s", "higher"),
        Metric("errors", "errors", "count", "lower"),
    )
    repo = "bench/storm"

    def setup(self, ctx: Context, registry: Registry) -> None:
        k = ctx.knobs
        if "storm_image" not in ctx.shared:
            layers = [os.urandom(k.storm_layer_bytes) for _ in range(k.storm_layers)]
            config = b'{"architecture":"amd64","os":"linux"}'
            ctx.shared["storm_image"] = cl.SmallImage(config, layers)
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        with cl.Client(registry, k.request_timeout) as c:
            for blob in (image.config, *image.layers):
                c.put_blob(self.repo, blob)
            c.put_manifest(self.repo, "latest", image.manifest)
        # One untimed pull: the storm measures a warm image (stated in RESULTS.md).
        config = self._config(ctx, registry)
        errors = self._client(ctx, config, time.perf_counter(), [])
        if errors:
            raise ScenarioError(f"warm-up pull failed: {errors}")

    def _config(self, ctx: Context, registry: Registry) -> Path:
        """A curl config fetching the manifest and every blob, each to /dev/null."""
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        path = ctx.workdir / f"storm-{registry.name}.curl"
        lines = [f'header = "Accept: {cl.OCI_MANIFEST}"']
        if registry.auth:
            lines.append(f'user = "{":".join(registry.auth)}"')
        urls = [f"{registry.url}/v2/{self.repo}/manifests/latest"] + [
            f"{registry.url}/v2/{self.repo}/blobs/{cl.sha256(b)}"
            for b in (image.config, *image.layers)
        ]
        for url in urls:
            lines += [f'url = "{url}"', 'output = "/dev/null"']
        path.write_text("\n".join(lines) + "\n")
        return path

    def _client(self, ctx: Context, config: Path, started: float, done: list[float]) -> list[str]:
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        proc = subprocess.run(
            ["curl", "-sS", "-K", str(config),
             "-w", "%{http_code} %{size_download}\\n"],
            capture_output=True,
            text=True,
            timeout=ctx.knobs.request_timeout,
        )  # fmt: skip
        done.append(time.perf_counter() - started)
        if proc.returncode != 0:
            return [f"curl exited {proc.returncode}: {proc.stderr[-300:]}"]
        sizes = [len(image.manifest), len(image.config), *(len(x) for x in image.layers)]
        got = [line.split() for line in proc.stdout.splitlines()]
        if [(c, int(s)) for c, s in got] != [("200", n) for n in sizes]:
            return [f"unexpected answers {got}"]
        return []

    def run(self, ctx: Context, registry: Registry, rep: int) -> dict[str, float]:
        k = ctx.knobs
        image = ctx.shared["storm_image"]
        assert isinstance(image, cl.SmallImage)
        config = self._config(ctx, registry)
        done: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        gate = threading.Barrier(k.storm_clients + 1)

        def client() -> None:
            gate.wait()
            found = self._client(ctx, config, started, done)
            with lock:
                errors.extend(found)

        threads = [threading.Thread(target=client) for _ in range(k.storm_clients)]
        for thread in threads:
            thread.start()
        with _Measured(registry) as storm:
            started = time.perf_counter()
            gate.wait()
            for thread in threads:
                thread.join()
        per_client = len(image.manifest) + sum(len(b) for b in (image.config, *image.layers))
        total_mib = per_client * k.storm_clients / MiB
        ordered = sorted(done)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered) + 0.999999) - 1)]
        if errors:
            ctx.shared.setdefault(f"storm_errors_{registry.name}", []).extend(errors)  # type: ignore[union-attr]
        _note(ctx, self.key, registry, rep, wall_s=round(storm.wall, 3), errors=errors[:5])
        return {
            "mib_s": total_mib / storm.wall,
            "p99_s": p99,
            "p50_s": median(ordered),
            "mib_per_cpu_s": total_mib / max(storm.cpu, 1 / _TICK),
            "errors": float(len(errors)),
        }


PULL_SCENARIOS: list[Scenario] = [PullAfterPush(), BlobGet(), PullStorm()]
