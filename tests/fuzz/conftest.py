"""The fuzz suite: Hypothesis-generated hostile requests against one real `cargobay serve`
(seeded with an image and a low-privilege user), asserting no 5xx, the protocol's error shape,
and that `/healthz` still answers and no traceback was logged at the end.

A new area is one more module: a `test_<area>.py` whose tests take the `fuzz` fixture (a
`target.FuzzTarget`), use `target.FUZZ` (bounded, derandomised settings) and the
`assert_*_answer` checks, and end with `fuzz.healthy()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import make_user
from e2e.ocihttp import Client
from fuzz.target import REPO, FuzzTarget
from server import Server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/fuzz/" in str(item.path):
            item.add_marker(pytest.mark.fuzz)


@pytest.fixture(scope="session")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    """A registry of the fuzz suite's own (policies set here must not leak into other tests)."""
    data = tmp_path_factory.mktemp("fuzz") / "data"
    server = Server(data).start()
    oci = Client(server)
    image = oci.push_image(REPO, "latest")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
    }
    user = make_user(server, "fuzzer", policy, tmp=Path(str(data.parent)))
    target = FuzzTarget(server, oci, image.digest, list(image.blobs), user)
    yield target
    target.healthy()
    log = server.log_path.read_text() if server.log_path else ""
    server.discard()
    at = log.find("Traceback")
    assert at < 0, log[max(0, at - 2000) : at + 3000]
