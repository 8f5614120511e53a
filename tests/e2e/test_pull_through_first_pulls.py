"""First pulls through the cache, with real parts only: Debian's `docker-registry` (CNCF
Distribution) as the upstream, whose access log counts every request cargobay makes; skopeo
and plain HTTP clients pulling through a real `cargobay serve` (two workers); a webhook
receiver for the `ECR Pull Through Cache Action` events of failed fills."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from e2e.ecrhelp import ACCOUNT, client, pull, pulled_blob, pulled_manifest, unique
from e2e.test_pull_through_cache import create_rule, iam_user
from e2e.webhookhelp import Receiver
from imagebuilder import build_image, sha256
from server import Server
from upstream.distribution import Distribution, free_port
from upstream.proxy import Proxy

ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


WEBHOOK_SECRET = "a-long-enough-webhook-secret"
HOOK = "/hooks/cache"
CACHE_ACTIONS = {"source": ["aws.ecr"], "detail-type": ["ECR Pull Through Cache Action"]}


@dataclass
class Setup:
    server: Server
    upstream: Distribution
    receiver: Receiver


def upstream_requests(upstream: Distribution, path: str) -> int:
    """Requests for `path` (any method) that the upstream answered 200."""
    pattern = re.compile(rf'"(GET|HEAD) {re.escape(path)} [^"]*" 200 ')
    return len(pattern.findall(upstream.log_path.read_text(errors="replace")))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("first-pulls")
    upstream = Distribution(root / "upstream").start()
    receiver = Receiver({HOOK: WEBHOOK_SECRET})
    hook = {"url": receiver.url(HOOK), "secret": WEBHOOK_SECRET}
    server = Server(
        root / "data",
        env={
            "CARGOBAY_WEBHOOKS": json.dumps([{**hook, "event_pattern": json.dumps(CACHE_ACTIONS)}]),
            "CARGOBAY_WEBHOOK_POLL_SECONDS": "1",
        },
    )
    try:
        server.start(timeout=120)
        create_rule(server, "up", upstream.url)
        yield Setup(server, upstream, receiver)
    finally:
        server.discard()
        upstream.discard()
        receiver.close()


def test_ten_concurrent_skopeo_first_pulls_fetch_manifest_and_blobs_once(
    setup: Setup, tmp_path: Path
) -> None:
    server, upstream = setup.server, setup.upstream
    image = build_image(tmp_path / "image", [4096, 700_000, 300_000], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "team/tenfold:v1")

    def first_pull(i: int) -> Path:
        pull(server, "up/team/tenfold:v1", tmp_path / f"pulled{i}")
        return tmp_path / f"pulled{i}"

    with ThreadPoolExecutor(10) as pool:
        pulled = list(pool.map(first_pull, range(10)))
    for directory in pulled:
        assert pulled_manifest(directory) == (image.manifest_digest, image.manifest)
        for digest, data in image.blobs.items():
            assert pulled_blob(directory, digest) == data
    assert upstream_requests(upstream, "/v2/team/tenfold/manifests/v1") == 1
    assert upstream_requests(upstream, f"/v2/team/tenfold/manifests/{image.manifest_digest}") == 0
    for digest in image.blobs:
        assert upstream_requests(upstream, f"/v2/team/tenfold/blobs/{digest}") == 1, digest


def _cache_manifest(setup: Setup, name: str, prefix: str = "up") -> None:
    """The manifest's first pull: the image's blobs are then known but not yet fetched."""
    response = setup.server.session().get(
        f"{setup.server.url}/v2/{prefix}/{name}/manifests/v1", headers=ACCEPT
    )
    assert response.status_code == 200, response.text


def test_a_range_on_a_first_blob_pull_is_honoured_and_the_blob_cached_whole(
    setup: Setup, tmp_path: Path
) -> None:
    server, upstream = setup.server, setup.upstream
    image = build_image(tmp_path / "image", [1_500_000, 400_000], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "team/ranged:v1")
    _cache_manifest(setup, "team/ranged")
    session = server.session()
    data, small_data = sorted(image.layers, key=len, reverse=True)
    big, small = sha256(data), sha256(small_data)
    url = f"{server.url}/v2/up/team/ranged/blobs/{big}"

    ranged = session.get(url, headers={"Range": "bytes=1000-600999"})
    assert ranged.status_code == 206, ranged.headers
    assert ranged.headers["Content-Range"] == f"bytes 1000-600999/{len(data)}"
    assert ranged.content == data[1000:601000]
    # Stored whole by that first pull: served from the store, not fetched again.
    whole = session.get(url)
    assert whole.status_code == 200 and whole.content == data
    tail = session.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == data[-10:]
    assert upstream_requests(upstream, f"/v2/team/ranged/blobs/{big}") == 1

    # A Range past the end of an uncached blob: 416, and the blob is still fetched and kept.
    small_url = f"{server.url}/v2/up/team/ranged/blobs/{small}"
    beyond = session.get(small_url, headers={"Range": "bytes=999999999-"})
    assert beyond.status_code == 416
    assert beyond.headers["Content-Range"] == f"bytes */{len(small_data)}"
    again = session.get(small_url)
    assert again.status_code == 200 and again.content == small_data
    assert upstream_requests(upstream, f"/v2/team/ranged/blobs/{small}") == 1


@contextmanager
def proxy_to(target: str) -> Iterator[Proxy]:
    """The misbehaving upstream proxy (tests/upstream/proxy.py), on a loop of its own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    proxy = Proxy(target)
    asyncio.run_coroutine_threadsafe(proxy.__aenter__(), loop).result(30)
    try:
        yield proxy
    finally:
        asyncio.run_coroutine_threadsafe(proxy.__aexit__(None, None, None), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_failed_fills_emit_failed_cache_actions(setup: Setup, tmp_path: Path) -> None:
    server, upstream, receiver = setup.server, setup.upstream, setup.receiver
    session = server.session()

    # The upstream is down (nothing listens there).
    create_rule(server, "down", f"http://127.0.0.1:{free_port()}")
    down = session.get(f"{server.url}/v2/down/team/app/manifests/v1", headers=ACCEPT)
    assert down.status_code == 404 and down.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"

    # The upstream wants credentials the rule does not have.
    locked = Distribution(tmp_path / "locked", "basic").start()
    try:
        create_rule(server, "locked", locked.url)
        refused = session.get(f"{server.url}/v2/locked/team/app/manifests/v1", headers=ACCEPT)
        assert refused.status_code == 404, refused.text
    finally:
        locked.discard()

    # The upstream sends a blob whose bytes do not match its digest.
    image = build_image(tmp_path / "image", [300_000], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "team/tampered:v1")
    layer = sha256(image.layers[0])
    with proxy_to(upstream.url) as proxy:
        create_rule(server, "tampered", proxy.url)
        _cache_manifest(setup, "team/tampered", prefix="tampered")
        proxy.mode = "tamper-blob"
        blob_url = f"{server.url}/v2/tampered/team/tampered/blobs/{layer}"
        try:  # an error answer, or (once streaming) a connection cut short
            bad = session.get(blob_url)
            refused = bad.status_code != 200 or bad.content != image.layers[0]
        except requests.RequestException:
            refused = True
        assert refused
        proxy.mode = "pass"
        good = session.get(blob_url)  # nothing bad was kept: fetched again, right this time
        assert good.status_code == 200 and good.content == image.layers[0]

    def failed() -> dict[str, dict]:
        events = [e for e in receiver.events[HOOK] if e["detail"]["sync-status"] == "FAILED"]
        return {e["detail"]["ecr-repository-prefix"]: e for e in events}

    receiver.wait_for(lambda: len(failed()) >= 3)
    events = failed()
    assert set(events) == {"down", "locked", "tampered"}
    assert receiver.bad == 0
    for prefix, code in [
        ("down", "UPSTREAM_UNAVAILABLE"),
        ("locked", "UPSTREAM_AUTHENTICATION_FAILED"),
        ("tampered", "DIGEST_MISMATCH"),
    ]:
        event = events[prefix]
        assert event["source"] == "aws.ecr"
        assert event["detail-type"] == "ECR Pull Through Cache Action"
        assert event["detail"]["failure-code"] == code, event
        assert event["detail"]["failure-reason"]
        assert event["detail"]["rule-version"] == "1"
    for prefix in ("down", "locked"):
        detail = events[prefix]["detail"]
        assert detail["repository-name"] == f"{prefix}/team/app"
        assert detail["image-tag"] == "v1"
        assert events[prefix]["resources"] == [
            f"arn:aws:ecr:us-east-1:000000000000:repository/{prefix}/team/app"
        ]
    assert events["tampered"]["detail"]["failure-reason"].startswith(f"layer {layer}: ")
    assert events["tampered"]["detail"]["repository-name"] == "tampered/team/tampered"
    successes = [
        e["detail"]["repository-name"]
        for e in receiver.events[HOOK]
        if e["detail"]["sync-status"] == "SUCCESS"
    ]
    assert "tampered/team/tampered" in successes  # the manifest's fill succeeded


def test_only_real_pulls_record_a_pull_time(setup: Setup, tmp_path: Path) -> None:
    """A blob fill reads the cached manifest for the blob's size: that is not a pull of it.
    A principal excluded from pull-time updates pulls an image through the cache first
    (manifest and every blob fetched from the upstream): no lastRecordedPullTime. Another
    principal's pull of the same image then records one."""
    server, upstream = setup.server, setup.upstream
    image = build_image(tmp_path / "img", [4096, 200_000], tag="v1")
    upstream.push(f"oci:{image.layout}:v1", "app/pulltime:v1")
    ecr = client(server)
    excluded, other = unique("excluded"), unique("counted")
    excluded_key = iam_user(server, ["ecr:*"], excluded)
    other_key = iam_user(server, ["ecr:*"], other)
    excluded_arn = f"arn:aws:iam::{ACCOUNT}:user/{excluded}"
    ecr.register_pull_time_update_exclusion(principalArn=excluded_arn)

    def pull_time() -> object:
        details = ecr.describe_images(repositoryName="up/app/pulltime")["imageDetails"]
        return details[0].get("lastRecordedPullTime")

    try:
        pull(server, "up/app/pulltime:v1", tmp_path / "excluded", creds=":".join(excluded_key))
        for digest in image.blobs:
            assert upstream_requests(upstream, f"/v2/app/pulltime/blobs/{digest}") == 1
        time.sleep(2)  # pull times are recorded in the background: give one the time to land
        assert pull_time() is None
        pull(server, "up/app/pulltime:v1", tmp_path / "counted", creds=":".join(other_key))
        deadline = time.monotonic() + 60
        while pull_time() is None:
            assert time.monotonic() < deadline, "the counted pull's time was never recorded"
            time.sleep(0.5)
    finally:
        ecr.deregister_pull_time_update_exclusion(principalArn=excluded_arn)
