"""One suite every BlobStore passes: the filesystem store in a temporary directory and the S3
store against a real (moto) S3 server. "Nodes" are separate store instances on the same URL,
as separate `cargobay serve` processes would have."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path

import pytest
import requests

from cargobay.storage import BlobStore, open_store
from s3server import MotoServer

MIB = 1024 * 1024
BUCKET = "conformance"

StoreFactory = Callable[[], BlobStore]


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The storage URL of a fresh, empty store of each kind."""
    if request.param == "filesystem":
        return f"file://{tmp_path / 'storage'}"
    s3: MotoServer = request.getfixturevalue("s3_server")
    s3.create_bucket(BUCKET)
    return s3.storage_url(BUCKET, f"t/{uuid.uuid4().hex}", with_credentials=True)


@pytest.fixture
def node(backend: str) -> StoreFactory:
    """Opens another store on the same URL: another process or node."""
    opened: list[BlobStore] = []

    def make() -> BlobStore:
        store = open_store(backend)
        opened.append(store)
        return store

    yield make
    for store in opened:
        close = getattr(store, "close", None)
        if close is not None:
            close()


def run(coro):
    return asyncio.run(coro)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def blocks(data: bytes, size: int = MIB) -> AsyncIterator[list[bytes]]:
    for i in range(0, len(data), size):
        yield [data[i : i + size]]


async def append(
    store: BlobStore, upload_id: str, offset: int, data: bytes, seen: list[bytes] | None = None
) -> int:
    observe = None if seen is None else (lambda block: seen.extend(block))
    return await store.upload_append(upload_id, offset, blocks(data), observe)


def feed(hasher: hashlib._Hash, block: list[bytes]) -> None:
    for chunk in block:
        hasher.update(chunk)


async def read_all(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in it])


async def push(store: BlobStore, data: bytes) -> str:
    """A whole upload, committed; returns the digest."""
    upload_id = str(uuid.uuid4())
    await store.upload_create(upload_id)
    assert await append(store, upload_id, 0, data) == len(data)
    digest = digest_of(data)
    await store.upload_commit(upload_id, digest, len(data))
    return digest


def test_create_append_commit_stat_read(node: StoreFactory) -> None:
    store = node()
    data = os.urandom(12 * MIB + 12345)

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        assert await store.upload_size(upload_id) == 0
        seen: list[bytes] = []
        assert await append(store, upload_id, 0, data, seen) == len(data)
        assert b"".join(seen) == data  # the observer saw every new byte, in order
        assert await store.upload_size(upload_id) == len(data)
        digest = digest_of(data)
        assert await store.stat(digest) is None
        await store.upload_commit(upload_id, digest)
        assert await store.stat(digest) == len(data)
        assert await store.upload_size(upload_id) is None
        assert await read_all(store.read(digest)) == data
        size = len(data)
        for start, end in [(0, 10), (5, None), (size - 1, size), (8 * MIB - 3, 8 * MIB + 3)]:
            got = await read_all(store.read(digest, start, end))
            assert got == data[start:end], (start, end)
        assert await read_all(store.read(digest, 100, 100)) == b""

    run(scenario())


def test_empty_blob(node: StoreFactory) -> None:
    store = node()

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        assert await append(store, upload_id, 0, b"") == 0
        digest = digest_of(b"")
        await store.upload_commit(upload_id, digest, 0)
        assert await store.stat(digest) == 0
        assert await read_all(store.read(digest)) == b""

    run(scenario())


def test_upload_create_twice_fails(node: StoreFactory) -> None:
    store = node()

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        with pytest.raises(FileExistsError):
            await store.upload_create(upload_id)

    run(scenario())


@pytest.mark.parametrize(
    ("first", "offset"),
    [
        (3 * MIB, MIB),  # inside a short tail
        (11 * MIB, 6 * MIB),  # inside a full part
        (11 * MIB, 9 * MIB),  # past the first part, inside the tail
        (11 * MIB, 0),  # everything
        (3 * MIB, 3 * MIB),  # exactly at the end: nothing discarded
    ],
)
def test_append_at_offset_discards_the_rest(node: StoreFactory, first: int, offset: int) -> None:
    store = node()
    head = os.urandom(first)
    tail = os.urandom(2 * MIB + 7)

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        await append(store, upload_id, 0, head)
        seen: list[bytes] = []
        assert await append(store, upload_id, offset, tail, seen) == offset + len(tail)
        assert b"".join(seen) == tail
        expected = head[:offset] + tail
        assert await read_all(store.upload_read(upload_id, len(expected))) == expected
        await store.upload_commit(upload_id, digest_of(expected))
        assert await read_all(store.read(digest_of(expected))) == expected

    run(scenario())


def test_append_past_the_end_is_lost_data(node: StoreFactory) -> None:
    store = node()

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        await append(store, upload_id, 0, b"abc")
        with pytest.raises(FileNotFoundError):
            await append(store, upload_id, 10, b"def")
        with pytest.raises(FileNotFoundError):
            await append(store, str(uuid.uuid4()), 0, b"no such upload")

    run(scenario())


def test_odd_chunks_hop_between_nodes(node: StoreFactory) -> None:
    """Each chunk lands on another node, which re-hashes what is stored (as the upload service
    does after a hop) and carries on; the blob comes out whole on a third node."""
    nodes = [node(), node()]
    chunks = [os.urandom(n) for n in (1, 3 * MIB, 7 * MIB, 1, 5 * MIB, 3 * MIB + 1, 1)]
    data = b"".join(chunks)

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await nodes[0].upload_create(upload_id)
        size = 0
        for i, chunk in enumerate(chunks):
            store = nodes[i % 2]
            hasher = hashlib.sha256()
            async for piece in store.upload_read(upload_id, size):
                hasher.update(piece)
            assert hasher.hexdigest() == hashlib.sha256(data[:size]).hexdigest()
            size = await store.upload_append(
                upload_id, size, blocks(chunk, 700_000), partial(feed, hasher)
            )
            assert hasher.hexdigest() == hashlib.sha256(data[:size]).hexdigest()
        assert size == len(data)
        third = node()
        assert await third.upload_size(upload_id) == len(data)
        await third.upload_commit(upload_id, digest_of(data), size)
        assert await nodes[0].stat(digest_of(data)) == len(data)
        assert await read_all(nodes[1].read(digest_of(data))) == data

    run(scenario())


def test_upload_read_then_continue(node: StoreFactory) -> None:
    store, other = node(), node()
    first, second = os.urandom(9 * MIB + 3), os.urandom(4 * MIB)

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        await append(store, upload_id, 0, first)
        assert await read_all(other.upload_read(upload_id, len(first))) == first
        assert await read_all(other.upload_read(upload_id, 1000)) == first[:1000]
        assert await append(other, upload_id, len(first), second) == len(first) + len(second)
        data = first + second
        assert await read_all(store.upload_read(upload_id, len(data))) == data
        await store.upload_commit(upload_id, digest_of(data))
        assert await read_all(other.read(digest_of(data))) == data

    run(scenario())


def test_commit_counts_only_the_given_size(node: StoreFactory) -> None:
    """Bytes past the committed size (leftovers of an interrupted write) are left out."""
    store = node()
    data = os.urandom(10 * MIB)

    async def scenario() -> None:
        for keep in (9 * MIB, 3 * MIB):
            upload_id = str(uuid.uuid4())
            await store.upload_create(upload_id)
            await append(store, upload_id, 0, data)
            await store.upload_commit(upload_id, digest_of(data[:keep]), keep)
            assert await read_all(store.read(digest_of(data[:keep]))) == data[:keep]

    run(scenario())


def test_commit_of_an_existing_digest_is_a_noop(node: StoreFactory) -> None:
    store, other = node(), node()
    data = os.urandom(6 * MIB)

    async def scenario() -> None:
        digest = await push(store, data)
        upload_id = str(uuid.uuid4())
        await other.upload_create(upload_id)
        await append(other, upload_id, 0, data)
        await other.upload_commit(upload_id, digest, len(data))
        assert await other.upload_size(upload_id) is None
        assert await store.stat(digest) == len(data)
        assert await read_all(store.read(digest)) == data
        await store.upload_delete(upload_id)  # after a commit: nothing left, no error

    run(scenario())


def test_delete_blob_and_upload(node: StoreFactory) -> None:
    store = node()

    async def scenario() -> None:
        digest = await push(store, b"delete me")
        await store.delete(digest)
        assert await store.stat(digest) is None
        with pytest.raises(FileNotFoundError):
            await read_all(store.read(digest))
        await store.delete(digest)  # idempotent

        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        await append(store, upload_id, 0, os.urandom(9 * MIB))
        await store.upload_delete(upload_id)
        assert await store.upload_size(upload_id) is None
        with pytest.raises(FileNotFoundError):
            await append(store, upload_id, 0, b"x")
        await store.upload_delete(upload_id)  # idempotent

    run(scenario())


def test_expire_uploads(node: StoreFactory) -> None:
    store = node()

    async def scenario() -> None:
        ids = [str(uuid.uuid4()) for _ in range(2)]
        for upload_id in ids:
            await store.upload_create(upload_id)
            await append(store, upload_id, 0, os.urandom(MIB))
        # A cutoff an hour ago spares uploads written just now; one an hour ahead takes them.
        assert await store.expire_uploads(time.time() - 3600) == 0
        assert [await store.upload_size(i) for i in ids] == [MIB, MIB]
        assert await store.expire_uploads(time.time() + 3600) >= len(ids)
        assert [await store.upload_size(i) for i in ids] == [None, None]
        assert await store.expire_uploads(time.time() + 3600) == 0

    run(scenario())


def test_download_url(node: StoreFactory, backend: str) -> None:
    store = node()
    data = os.urandom(MIB + 17)

    async def scenario() -> str | None:
        digest = await push(store, data)
        return await store.download_url(digest, 300)

    url = run(scenario())
    if backend.startswith("file://"):
        assert url is None
        return
    assert url is not None
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.content == data
    ranged = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=30)
    assert ranged.status_code == 206
    assert ranged.content == data[10:20]


# -- S3 only --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sse": "AES256"}, {"ServerSideEncryption": "AES256"}),
        (
            {"sse": "aws:kms", "kms_key_id": "alias/cargobay"},
            {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/cargobay"},
        ),
    ],
)
def test_s3_sends_sse_headers_on_every_write(
    s3_server: MotoServer, params: dict[str, str], expected: dict[str, str]
) -> None:
    s3_server.create_bucket(BUCKET)
    prefix = f"sse/{uuid.uuid4().hex}"
    store = open_store(s3_server.storage_url(BUCKET, prefix, with_credentials=True, **params))
    client = s3_server.client()

    def encryption(key: str) -> dict[str, str]:
        head = client.head_object(Bucket=BUCKET, Key=key)
        return {k: head[k] for k in expected if k in head}

    small, large = os.urandom(1000), os.urandom(9 * MIB)

    async def scenario() -> None:
        upload_id = str(uuid.uuid4())
        await store.upload_create(upload_id)
        await append(store, upload_id, 0, large)
        objects = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/_uploads/")
        keys = [item["Key"] for item in objects["Contents"]]
        assert len(keys) == 3  # state, one part, one tail
        for key in keys:
            assert encryption(key) == expected, key
        await store.upload_commit(upload_id, digest_of(large))  # multipart assembly
        await push(store, small)  # one piece: CopyObject
        await push(store, b"")  # empty: PutObject

    run(scenario())
    for data in (large, small, b""):
        hexpart = digest_of(data).split(":")[1]
        assert encryption(f"{prefix}/blobs/sha256/{hexpart[:2]}/{hexpart}") == expected


def test_s3_layout_and_cleanup(s3_server: MotoServer) -> None:
    """Blobs at <prefix>/blobs/<alg>/<2 hex>/<hex>; nothing of an upload is left after it."""
    s3_server.create_bucket(BUCKET)
    prefix = f"layout/{uuid.uuid4().hex}"
    store = open_store(s3_server.storage_url(BUCKET, prefix, with_credentials=True))
    client = s3_server.client()
    data = os.urandom(17 * MIB)

    digest = run(push(store, data))
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/")
    hexpart = digest.split(":")[1]
    assert [item["Key"] for item in listed["Contents"]] == [
        f"{prefix}/blobs/sha256/{hexpart[:2]}/{hexpart}"
    ]
    assert not client.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix).get("Uploads")


def test_s3_expire_aborts_interrupted_commits(s3_server: MotoServer) -> None:
    s3_server.create_bucket(BUCKET)
    prefix = f"expire/{uuid.uuid4().hex}"
    store = open_store(s3_server.storage_url(BUCKET, prefix, with_credentials=True))
    client = s3_server.client()
    client.create_multipart_upload(Bucket=BUCKET, Key=f"{prefix}/blobs/sha256/ab/abandoned")
    elsewhere = f"other-{prefix}/blobs/sha256/ab/not-ours"
    client.create_multipart_upload(Bucket=BUCKET, Key=elsewhere)
    # (moto reports a fixed 2010 initiation date, so "too recent to expire" is not checked.)
    assert run(store.expire_uploads(time.time() + 3600)) == 1
    assert not client.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{prefix}/").get("Uploads")
    left = client.list_multipart_uploads(Bucket=BUCKET, Prefix=f"other-{prefix}/")["Uploads"]
    assert [item["Key"] for item in left] == [elsewhere]


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3://bucket?endpoint=ftp://host",
        "s3://bucket?sse=rot13",
        "s3://bucket?kms_key_id=k",
        "s3://bucket?part_size=1024",
        "s3://bucket?path_style=maybe",
        "s3://bucket?colour=blue",
        "s3://bucket?access_key_id=AKIA",
    ],
)
def test_s3_url_errors(url: str) -> None:
    from cargobay.storage.s3 import parse_url

    with pytest.raises(ValueError):
        parse_url(url)


def test_s3_url_parsing() -> None:
    from cargobay.config import ConfigError, load_settings
    from cargobay.storage.s3 import parse_url

    config = parse_url(
        "s3://bkt/a/b/?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=false"
        "&sse=aws:kms&kms_key_id=arn:aws:kms:eu-west-1:1:key/k&part_size=16777216"
    )
    assert (config.bucket, config.prefix, config.endpoint) == (
        "bkt",
        "a/b",
        "http://127.0.0.1:9000",
    )
    assert (config.region, config.path_style, config.sse) == ("eu-west-1", False, "aws:kms")
    assert config.kms_key_id == "arn:aws:kms:eu-west-1:1:key/k"
    assert config.part_size == 16 * MIB
    secret = parse_url("s3://bkt?access_key_id=AKIA&secret_access_key=hush")
    assert "hush" not in repr(secret)

    settings = load_settings(overrides={"storage": "s3://bkt/p?region=us-east-1"}, environ={})
    assert settings.storage_url == "s3://bkt/p?region=us-east-1"
    assert settings.redirect_blob_downloads is True
    with pytest.raises(ConfigError):
        load_settings(overrides={"storage": "s3://bkt?sse=nope"}, environ={})
    with pytest.raises(ConfigError):
        load_settings(overrides={"storage": "gcs://bkt"}, environ={})
