"""What survives: upload sessions across restarts and worker processes, completed pushes across a
SIGKILL mid-transfer, many pushes at once, and a 1 GiB blob in bounded server memory."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from e2e.ocihttp import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Client,
    assert_error,
    descriptor,
    sha256,
    stream,
    unique_repo,
)
from storagehelp import (
    assert_blob_store_consistent,
    buffered_before_store,
    delete_stored_blob,
    upload_bytes_stored,
)

MiB = 1024 * 1024


def _pieces(seed: int, size: int, piece: int = MiB) -> Iterator[bytes]:
    """Deterministic pseudo-random bytes, produced piece by piece (never held whole)."""
    rng = random.Random(seed)
    sent = 0
    while sent < size:
        n = min(piece, size - sent)
        yield rng.randbytes(n)
        sent += n


def _digest_of(seed: int, size: int) -> str:
    hasher = hashlib.sha256()
    for piece in _pieces(seed, size):
        hasher.update(piece)
    return "sha256:" + hasher.hexdigest()


# -- restarts ---------------------------------------------------------------------------------


def test_upload_session_survives_restart(fresh_registry) -> None:
    repo = unique_repo("durable")
    data = os.urandom(2 * MiB + 333)
    client = Client(fresh_registry)
    location = client.start_upload(repo)
    first = client.patch(location, data=data[:700_000], headers={"Content-Range": "0-699999"})
    assert first.status_code == 202
    location = first.headers["Location"]

    fresh_registry.stop()
    fresh_registry.start()

    client = Client(fresh_registry)
    status = client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-699999"
    second = client.patch(
        location, data=data[700_000:1_500_000], headers={"Content-Range": "700000-1499999"}
    )
    assert second.status_code == 202, second.text
    # A streamed chunk and the final PUT with the last piece as its body.
    third = client.patch(second.headers["Location"], data=stream(data[1_500_000:2_000_000]))
    assert third.status_code == 202
    assert third.headers["Range"] == "0-1999999"
    done = client.put(
        third.headers["Location"], params={"digest": sha256(data)}, data=data[2_000_000:]
    )
    assert done.status_code == 201, done.text
    assert client.pull_blob(repo, sha256(data)) == data

    fresh_registry.stop()
    fresh_registry.start()
    assert Client(fresh_registry).pull_blob(repo, sha256(data)) == data


def test_chunks_on_fresh_connections_hop_workers(registry) -> None:
    """Each request on a new connection, so SO_REUSEPORT spreads them over the workers; two
    uploads interleave, so each worker's cached hash state goes stale and must be rebuilt."""
    auth = registry.session().auth
    repo = unique_repo("durable")

    def fresh(method: str, url: str, **kwargs) -> requests.Response:
        headers = {"Connection": "close", **kwargs.pop("headers", {})}
        with requests.Session() as session:
            return session.request(
                method, Client(registry).url(url), auth=auth, headers=headers, timeout=60, **kwargs
            )

    rng = random.Random(7)
    blobs = [os.urandom(1_500_000 + i * 1000) for i in range(2)]
    locations = []
    for _ in blobs:
        response = fresh("POST", f"/v2/{repo}/blobs/uploads/")
        assert response.status_code == 202
        locations.append(response.headers["Location"])
    offsets = [0, 0]
    while any(offsets[i] < len(blobs[i]) for i in range(2)):
        for i, data in enumerate(blobs):
            if offsets[i] >= len(data):
                continue
            size = rng.randint(1, 200_000)
            chunk = data[offsets[i] : offsets[i] + size]
            end = offsets[i] + len(chunk) - 1
            headers = {"Content-Range": f"{offsets[i]}-{end}"} if rng.random() < 0.7 else {}
            response = fresh("PATCH", locations[i], data=chunk, headers=headers)
            assert response.status_code == 202, response.text
            assert response.headers["Range"] == f"0-{end}"
            offsets[i] = end + 1
            locations[i] = response.headers["Location"]
            if rng.random() < 0.3:
                status = fresh("GET", locations[i])
                assert status.status_code == 204
                assert status.headers["Range"] == f"0-{end}"
    for location, data in zip(locations, blobs, strict=True):
        done = fresh("PUT", location, params={"digest": sha256(data)})
        assert done.status_code == 201, done.text
        assert fresh("GET", f"/v2/{repo}/blobs/{sha256(data)}").content == data


# -- crashes ----------------------------------------------------------------------------------


class _StallingBody:
    """A streamed request body that sends `before` bytes, signals, then waits for the kill."""

    def __init__(self, seed: int, size: int, before: int, killed: threading.Event) -> None:
        self.seed, self.size, self.before = seed, size, before
        self.sent_enough = threading.Event()
        self.killed = killed

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for piece in _pieces(self.seed, self.size):
            if sent >= self.before and not self.sent_enough.is_set():
                self.sent_enough.set()
                self.killed.wait(60)
            yield piece
            sent += len(piece)


def test_sigkill_mid_push_leaves_completed_pushes_intact(fresh_registry) -> None:
    server = fresh_registry
    client = Client(server)
    repo = unique_repo("crash")

    # Completed before the crash: an image, a chunked blob, a sha512 blob.
    image = client.push_image(repo, "before", layer_sizes=[3 * MiB, 1000])
    chunked = os.urandom(MiB + 5)
    location = client.start_upload(repo)
    part = client.patch(location, data=chunked[:MiB], headers={"Content-Range": f"0-{MiB - 1}"})
    done = client.put(
        part.headers["Location"], params={"digest": sha256(chunked)}, data=chunked[MiB:]
    )
    assert done.status_code == 201

    size = 64 * MiB
    killed = threading.Event()
    bodies = {
        name: _StallingBody(seed, size, 8 * MiB, killed)
        for seed, name in enumerate(["post", "patch", "put"], start=100)
    }
    digests = {name: _digest_of(body.seed, size) for name, body in bodies.items()}
    patch_location = client.start_upload(repo)
    put_location = client.start_upload(repo)

    def send(name: str) -> None:
        s = requests.Session()
        s.auth = client.session.auth
        url = {
            "post": client.url(f"/v2/{repo}/blobs/uploads/?digest={digests['post']}"),
            "patch": client.url(patch_location),
            "put": client.url(f"{put_location}?digest={digests['put']}"),
        }[name]
        method = {"post": "POST", "patch": "PATCH", "put": "PUT"}[name]
        try:
            response = s.request(method, url, data=iter(bodies[name]), timeout=120)
            errors[name] = f"finished with {response.status_code}"
        except requests.RequestException:
            pass  # the expected outcome: the server died mid-request

    errors: dict[str, str] = {}
    threads = [threading.Thread(target=send, args=(name,)) for name in bodies]
    for thread in threads:
        thread.start()
    try:
        for name, body in bodies.items():
            assert body.sent_enough.wait(60), f"{name} never got going"
        server.kill()
    finally:
        killed.set()
        for thread in threads:
            thread.join(120)
    assert not errors, errors

    server.start()
    client = Client(server)
    # Everything completed before the crash is served intact.
    assert client.get(f"/v2/{repo}/manifests/before").content == image.manifest
    for digest, data in image.blobs.items():
        assert client.pull_blob(repo, digest) == data
    assert client.pull_blob(repo, sha256(chunked)) == chunked
    # Nothing interrupted is visible, and nothing partial sits in the blob store.
    for digest in digests.values():
        assert client.head(f"/v2/{repo}/blobs/{digest}").status_code == 404
        assert_error(client.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
    stored = assert_blob_store_consistent(server)
    assert not stored & set(digests.values())
    assert {sha256(chunked), *image.blobs} <= stored

    # The interrupted session is still there, at its last committed offset, and can finish.
    status = client.get(patch_location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-0"
    resumed = client.patch(patch_location, data=_pieces(bodies["patch"].seed, size), headers={})
    assert resumed.status_code == 202, resumed.text
    assert resumed.headers["Range"] == f"0-{size - 1}"
    finished = client.put(resumed.headers["Location"], params={"digest": digests["patch"]})
    assert finished.status_code == 201, finished.text
    assert client.head(f"/v2/{repo}/blobs/{digests['patch']}").status_code == 200
    assert_blob_store_consistent(server)


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_pushes(registry) -> None:
    shared_repo = unique_repo("conc")
    same = os.urandom(2 * MiB + 1)
    distinct = [os.urandom(MiB + i) for i in range(12)]
    barrier = threading.Barrier(24)

    def monolithic(client: Client, repo: str, data: bytes) -> str:
        return client.push_blob(repo, data)

    def post_put(client: Client, repo: str, data: bytes) -> str:
        response = client.put(client.start_upload(repo), params={"digest": sha256(data)}, data=data)
        assert response.status_code == 201, response.text
        return response.headers["Docker-Content-Digest"]

    def chunked(client: Client, repo: str, data: bytes) -> str:
        location = client.start_upload(repo)
        step = 300_000
        for start in range(0, len(data), step):
            piece = data[start : start + step]
            response = client.patch(
                location,
                data=piece,
                headers={"Content-Range": f"{start}-{start + len(piece) - 1}"},
            )
            assert response.status_code == 202, response.text
            location = response.headers["Location"]
        response = client.put(location, params={"digest": sha256(data)})
        assert response.status_code == 201, response.text
        return response.headers["Docker-Content-Digest"]

    def streamed(client: Client, repo: str, data: bytes) -> str:
        location = client.start_upload(repo)
        response = client.patch(location, data=stream(data))
        assert response.status_code == 202, response.text
        response = client.put(response.headers["Location"], params={"digest": sha256(data)})
        assert response.status_code == 201, response.text
        return response.headers["Docker-Content-Digest"]

    methods: list[Callable[[Client, str, bytes], str]] = [monolithic, post_put, chunked, streamed]
    jobs: list[tuple[str, bytes, Callable[[Client, str, bytes], str], str]] = []
    for i in range(12):  # the same blob: 8 into one repository, 4 into repositories of their own
        repo = shared_repo if i < 8 else unique_repo("conc")
        jobs.append((repo, same, methods[i % 4], f"same-{i}"))
    for i, data in enumerate(distinct):
        jobs.append((shared_repo, data, methods[i % 4], f"distinct-{i}"))

    def run(job: tuple[str, bytes, Callable[[Client, str, bytes], str], str]) -> str:
        repo, data, method, tag = job
        client = Client(registry)
        barrier.wait(60)
        digest = method(client, repo, data)
        assert digest == sha256(data)
        # And a manifest per job, tagged, so metadata writes race too.
        config = json.dumps({"job": tag}).encode()
        client.push_blob(repo, config)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, config),
                "layers": [descriptor(OCI_LAYER, data)],
            }
        ).encode()
        client.push_manifest(repo, tag, manifest, OCI_MANIFEST)
        return digest

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    assert results == [sha256(data) for _, data, _, _ in jobs]

    client = Client(registry)
    for repo, data, _, tag in jobs:
        assert client.pull_blob(repo, sha256(data)) == data
        manifest = client.get(f"/v2/{repo}/manifests/{tag}")
        assert manifest.status_code == 200
        assert json.loads(manifest.content)["layers"][0]["digest"] == sha256(data)
    tags = client.get(f"/v2/{shared_repo}/tags/list").json()["tags"]
    assert tags == sorted(tag for repo, _, _, tag in jobs if repo == shared_repo)
    assert_blob_store_consistent(registry)


class _GatedBody:
    """A streamed body: `first` bytes, then a wait for `go`, then `rest` bytes."""

    def __init__(self, first: bytes, rest: bytes) -> None:
        self.first, self.rest = first, rest
        self.go = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        yield from stream(self.first, MiB)
        self.go.wait(60)
        yield from stream(self.rest, MiB)


def _wait_for_size(server, location: str, size: int) -> None:
    """Poll until the server has written `size` bytes of a stalled request to the store (no
    timing asserts). On S3 bytes reach the store a part at a time, so a stalled body must send
    `buffered_before_store` bytes more than it waits for."""
    upload_id = location.rstrip("/").rsplit("/", 1)[1]
    for _ in range(6000):
        if upload_bytes_stored(server, upload_id) >= size:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"upload {upload_id} never reached {size} bytes in the store")


def _assert_never_corrupt(client: Client, repo: str, digest: str, data: bytes) -> None:
    head = client.head(f"/v2/{repo}/blobs/{digest}")
    if head.status_code == 200:
        assert int(head.headers["Content-Length"]) == len(data)
        got = client.get(f"/v2/{repo}/blobs/{digest}").content
        assert len(got) == len(data), f"blob served with {len(got)} bytes, not {len(data)}"
        assert got == data, "blob served with bytes that do not match its digest"
    else:
        assert head.status_code == 404
    assert_blob_store_consistent(client.server)


def test_writer_racing_a_commit_cannot_corrupt_the_blob(registry) -> None:
    """A PATCH still streaming when a PUT commits the upload must not write into the blob."""
    client = Client(registry)
    repo = unique_repo("race")
    data = os.urandom(MiB + 99)
    location = client.start_upload(repo)
    assert client.patch(location, data=data).status_code == 202

    late = _GatedBody(os.urandom(2 * MiB + buffered_before_store(registry)), os.urandom(MiB))
    results: dict[str, int] = {}

    def patch() -> None:
        other = Client(registry, requests.Session())
        other.session.auth = client.session.auth
        results["late"] = other.patch(location, data=iter(late)).status_code

    thread = threading.Thread(target=patch)
    thread.start()
    try:
        _wait_for_size(registry, location, len(data) + MiB)
        results["put"] = client.put(location, params={"digest": sha256(data)}).status_code
    finally:
        late.go.set()
        thread.join(60)
    # The upload is held by the streaming PATCH: the PUT is told to retry (416), and the PATCH
    # completes; the digest then no longer matches, so nothing is ever committed wrongly.
    assert results == {"put": 416, "late": 202}, results
    _assert_never_corrupt(client, repo, sha256(data), data)


def test_writers_racing_on_one_offset_cannot_corrupt_the_blob(registry) -> None:
    """A stalled PATCH that resumes after another PATCH rewrote the same offset must not leave
    mixed bytes behind a digest the registry then accepts."""
    client = Client(registry)
    repo = unique_repo("race")
    data = os.urandom(2 * MiB)
    location = client.start_upload(repo)
    slow = _GatedBody(os.urandom(MiB + MiB // 2 + buffered_before_store(registry)), os.urandom(MiB))
    results: dict[str, int] = {}

    def patch() -> None:
        other = Client(registry, requests.Session())
        other.session.auth = client.session.auth
        results["slow"] = other.patch(location, data=iter(slow)).status_code

    thread = threading.Thread(target=patch)
    thread.start()
    try:
        _wait_for_size(registry, location, MiB)
        fast = client.patch(location, data=data, headers={"Content-Range": f"0-{len(data) - 1}"})
        results["fast"] = fast.status_code
    finally:
        slow.go.set()
        thread.join(60)
    results["put"] = client.put(location, params={"digest": sha256(data)}).status_code
    # The second writer is refused with 416 while the first holds the upload; the first wins,
    # so the upload holds its bytes and the digest of the refused chunk does not match.
    assert results == {"fast": 416, "slow": 202, "put": 400}, results
    _assert_never_corrupt(client, repo, sha256(data), data)


def test_interrupted_patch_leaves_no_bytes_behind_the_count(registry) -> None:
    """A client that vanishes mid-PATCH leaves bytes on disk past the upload's size; a body-less
    PUT for the counted bytes must commit exactly those."""
    client = Client(registry)
    repo = unique_repo("race")
    data = os.urandom(300_000)
    location = client.start_upload(repo)
    assert client.patch(location, data=data).status_code == 202

    key, secret = registry.credentials
    token = base64.b64encode(f"{key}:{secret}".encode()).decode()
    path = urlsplit(client.url(location)).path
    extra = buffered_before_store(registry)
    with socket.create_connection(("127.0.0.1", registry.port)) as sock:
        sock.sendall(
            f"PATCH {path} HTTP/1.1\r\nHost: {registry.host}\r\nAuthorization: Basic {token}\r\n"
            f"Content-Length: {4 * MiB + extra}\r\n\r\n".encode()
        )
        sock.sendall(os.urandom(2 * MiB + extra))
        _wait_for_size(registry, location, len(data) + MiB)
    # The connection is gone; once the server notices, the upload is free again.
    for _ in range(1000):
        status = client.get(location)
        done = client.put(location, params={"digest": sha256(data)})
        if done.status_code != 416:
            break
        threading.Event().wait(0.01)
    assert status.headers["Range"] == f"0-{len(data) - 1}"
    assert done.status_code == 201, done.text
    _assert_never_corrupt(client, repo, sha256(data), data)
    assert client.pull_blob(repo, sha256(data)) == data


# -- memory -----------------------------------------------------------------------------------


def _rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except FileNotFoundError:
            pass
    return total


class _RssSampler(threading.Thread):
    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, _rss_bytes(self.pids))
            self.samples += 1
            self.done.wait(0.02)

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.peak = max(self.peak, _rss_bytes(self.pids))
        return self.peak


@pytest.mark.slow
def test_one_gib_blob_in_bounded_server_memory(fresh_registry) -> None:
    server = fresh_registry
    client = Client(server)
    repo = unique_repo("big")
    size = 1024 * MiB
    # Warm the code paths up (imports, pools, hash objects) before the baseline.
    warm = os.urandom(4 * MiB)
    location = client.start_upload(repo)
    client.put(
        client.patch(location, data=stream(warm)).headers["Location"],
        params={"digest": sha256(warm)},
    )
    assert client.pull_blob(repo, sha256(warm)) == warm

    pids = server.pids()
    assert len(pids) == 1 + server.workers
    baseline = _rss_bytes(pids)
    sampler = _RssSampler(pids)
    sampler.start()
    try:
        hasher = hashlib.sha256()

        def body() -> Iterator[bytes]:
            for piece in _pieces(1, size):
                hasher.update(piece)
                yield piece

        location = client.start_upload(repo)
        pushed = client.patch(location, data=body(), timeout=600)
        assert pushed.status_code == 202, pushed.text
        assert pushed.headers["Range"] == f"0-{size - 1}"
        digest = "sha256:" + hasher.hexdigest()
        done = client.put(pushed.headers["Location"], params={"digest": digest}, timeout=600)
        assert done.status_code == 201, done.text

        head = client.head(f"/v2/{repo}/blobs/{digest}")
        assert int(head.headers["Content-Length"]) == size
        pulled = hashlib.sha256()
        received = 0
        # Object storage answers with a 307 to a presigned URL: the bytes bypass the node.
        answer, response = client.get_blob(repo, digest, stream=True, timeout=600)
        with response:
            assert response.status_code == 200
            assert answer.headers["Docker-Content-Digest"] == digest
            for chunk in response.iter_content(MiB):
                pulled.update(chunk)
                received += len(chunk)
        assert received == size
        assert "sha256:" + pulled.hexdigest() == digest
    finally:
        peak = sampler.stop()
    assert sampler.samples > 10
    growth = peak - baseline
    assert growth < 64 * MiB, f"server RSS grew by {growth / MiB:.1f} MiB (baseline {baseline})"
    # Give the disk back; the test's registry is thrown away afterwards.
    delete_stored_blob(server, digest)
