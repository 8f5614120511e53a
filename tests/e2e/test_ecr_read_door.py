"""The ECR JSON door under a burst of reads (issue 19, stop 24): boto3 against a real
`cargobay serve` with two workers, whose garbage collector is tuned (`cargobay.gctune`), whose
input checks remember their pattern answers (`aws.regex`) and whose audit records are written
in short batches (`audit.record`). Every call still gets its answer and its audit record."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from e2e.ecrhelp import client, raises, unique
from e2e.ocihttp import Client
from server import Server

pytestmark = pytest.mark.backend

CALLS = 450  # more than two of the audit writer's batches (MAX_BATCH = 200)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    started = Server(tmp_path_factory.mktemp("read-door") / "data", workers=2).start()
    yield started
    started.discard()


@pytest.fixture(scope="module")
def image(server: Server) -> dict[str, Any]:
    name = unique("read/door")
    pushed = Client(server).push_image(name, "v1", layer_sizes=(96,))
    layer = next(d for d, data in pushed.blobs.items() if len(data) == 96)
    return {"name": name, "layer": layer, "data": pushed.blobs[layer]}


def _audited(server: Server, event_name: str) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "cargobay", "audit", "--data-dir", str(server.data_dir),
         "--event-name", event_name, "--json"],
        capture_output=True, text=True, env=server.process_env, timeout=120, check=True,
    )  # fmt: skip
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_every_url_of_a_burst_fetches_its_layer_and_every_call_is_audited(
    server: Server, image: dict[str, Any]
) -> None:
    ecr = client(server)
    name, layer = image["name"], image["layer"]

    def one(_: int) -> str:
        return ecr.get_download_url_for_layer(repositoryName=name, layerDigest=layer)["downloadUrl"]

    with ThreadPoolExecutor(8) as pool:
        urls = list(pool.map(one, range(CALLS)))
    assert len(urls) == CALLS
    for url in (urls[0], urls[len(urls) // 2], urls[-1]):
        fetched = requests.get(url, timeout=30)  # the URL's own token, no other credentials
        assert fetched.status_code == 200
        assert fetched.content == image["data"]
    # The records are buffered for up to `audit_flush_ms`, then written in short batches.
    deadline = time.monotonic() + 60
    while True:
        records = [
            r
            for r in _audited(server, "GetDownloadUrlForLayer")
            if r["requestParameters"].get("repositoryName") == name
        ]
        if len(records) >= CALLS or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(records) == CALLS
    assert len({r["requestID"] for r in records}) == CALLS
    assert all(r["readOnly"] is True and "errorCode" not in r for r in records)


def test_input_checks_answer_the_same_every_time(server: Server, image: dict[str, Any]) -> None:
    """A repository name that breaks ECR's pattern is refused on every call, the first and
    the ones answered from the remembered pattern answers alike; a good one is served."""
    ecr = client(server)
    for _ in range(3):
        with raises("InvalidParameterException") as info:
            ecr.batch_get_image(repositoryName="Bad//Name", imageIds=[{"imageTag": "v1"}])
        assert "repositoryName" in info.value.response["Error"]["Message"]
        got = ecr.batch_get_image(repositoryName=image["name"], imageIds=[{"imageTag": "v1"}])
        assert got["failures"] == [] and len(got["images"]) == 1
