"""Real upstream registries for the pull-through client tests: Distribution in each auth mode,
holding a single-platform OCI image and a multi-arch index pushed by skopeo."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from imagebuilder import Image, Index, build_image, build_index
from upstream.distribution import Distribution

MODES = ("anonymous", "basic", "token")


@dataclass
class Upstream:
    registry: Distribution
    image: Image  # at app/single:v1
    index: Index  # at app/multi:v1


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Image, Index]:
    root = tmp_path_factory.mktemp("upstream-images")
    image = build_image(root / "single", [4096, 300_000], tag="v1")
    index = build_index(root / "multi", ["amd64", "arm64"], [2048, 100_000], tag="v1")
    return image, index


def _upstream(root: Path, mode: str, built: tuple[Image, Index]) -> Upstream:
    image, index = built
    registry = Distribution(root / mode, mode).start()
    registry.push(f"oci:{image.layout}:v1", "app/single:v1")
    registry.push(f"oci:{index.layout}:v1", "app/multi:v1", "--all")
    return Upstream(registry, image, index)


@pytest.fixture(scope="session")
def upstreams(
    tmp_path_factory: pytest.TempPathFactory, built: tuple[Image, Index]
) -> Iterator[dict[str, Upstream]]:
    """One Distribution per auth mode, started lazily and shared by the session."""
    root = tmp_path_factory.mktemp("upstreams")
    started: dict[str, Upstream] = {}

    class Lazy(dict):
        def __missing__(self, mode: str) -> Upstream:
            started[mode] = _upstream(root, mode, built)
            self[mode] = started[mode]
            return started[mode]

    yield Lazy()
    for upstream in started.values():
        upstream.registry.discard()


@pytest.fixture(params=MODES)
def upstream(request: pytest.FixtureRequest, upstreams: dict[str, Upstream]) -> Upstream:
    return upstreams[request.param]
