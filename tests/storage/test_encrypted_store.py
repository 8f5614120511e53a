"""Envelope-encrypted blobs (cargobay.storage.encrypted) on the filesystem store and on S3
(a moto server): round trips and Range reads across segment boundaries, nothing plaintext at
rest, tampering detected, key states enforced, rotation and per-key deduplication."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cargobay.kms.service import KmsService
from cargobay.storage import open_store
from cargobay.storage.encrypted import (
    BlobCorrupt,
    EncryptedBlobs,
    KeyUnavailable,
    stored_address,
)
from kmshelp import ACCOUNT, Clock, kms_service
from s3server import MotoServer

BUCKET = "encrypted"
SEGMENT = 1024  # small segments: many boundaries in small blobs
MARKER = b"PLAINTEXT-MARKER-7f3a9c"


@dataclass
class Backend:
    """A fresh store of one kind, plus raw access to what it holds."""

    url: str
    root: Path | None = None  # filesystem
    s3: Any = None  # boto3 client
    prefix: str = ""

    def _key(self, address: str) -> str:
        algorithm, _, hexpart = address.partition(":")
        return f"{self.prefix}/blobs/{algorithm}/{hexpart[:2]}/{hexpart}"

    def objects(self) -> dict[str, bytes]:
        """Every stored file or object, by name."""
        if self.root is not None:
            return {str(p): p.read_bytes() for p in self.root.rglob("*") if p.is_file()}
        found = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                body = self.s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
                found[item["Key"]] = body
        return found

    def get(self, address: str) -> bytes:
        if self.root is not None:
            algorithm, _, hexpart = address.partition(":")
            return (self.root / "blobs" / algorithm / hexpart[:2] / hexpart).read_bytes()
        return self.s3.get_object(Bucket=BUCKET, Key=self._key(address))["Body"].read()

    def put(self, address: str, data: bytes) -> None:
        if self.root is not None:
            algorithm, _, hexpart = address.partition(":")
            (self.root / "blobs" / algorithm / hexpart[:2] / hexpart).write_bytes(data)
        else:
            self.s3.put_object(Bucket=BUCKET, Key=self._key(address), Body=data)


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, tmp_path)


def make_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A fresh store of the kind `request.param` names (also used by test_encrypted_staging)."""
    if request.param == "filesystem":
        root = tmp_path / "storage"
        return Backend(f"file://{root}", root=root)
    s3: MotoServer = request.getfixturevalue("s3_server")
    s3.create_bucket(BUCKET)
    prefix = f"t/{uuid.uuid4().hex}"
    url = s3.storage_url(BUCKET, prefix, with_credentials=True, part_size=str(5 * 1024 * 1024))
    return Backend(url, s3=s3.client(), prefix=prefix)


Scenario = Callable[[EncryptedBlobs, KmsService, Clock], Awaitable[None]]


def run(tmp_path: Path, backend: Backend, scenario: Scenario) -> None:
    async def main() -> None:
        clock = Clock()
        kms = await kms_service(tmp_path / "meta", clock)
        store = open_store(backend.url)
        try:
            await scenario(EncryptedBlobs(store, kms, segment_size=SEGMENT), kms, clock)
        finally:
            close = getattr(store, "close", None)
            if close is not None:
                close()
            await kms.db.dispose()

    (tmp_path / "meta").mkdir(exist_ok=True)
    asyncio.run(main())


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def chunks(data: bytes, size: int = 5000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read(
    blobs: EncryptedBlobs, digest: str, key_id: str, start: int = 0, end: int | None = None
) -> bytes:
    return b"".join([piece async for piece in blobs.read(digest, key_id, start, end)])


async def new_key(kms: KmsService) -> str:
    return (await kms.create_key(ACCOUNT))["KeyMetadata"]["KeyId"]


def _layer(size: int) -> bytes:
    """Random bytes with the marker planted at the start, across a boundary, and at the end."""
    data = bytearray(os.urandom(size))
    for at in (0, SEGMENT - 5, size - len(MARKER)):
        data[at : at + len(MARKER)] = MARKER
    return bytes(data)


def test_round_trip_and_ranges_across_segments(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        await kms.create_alias(ACCOUNT, "alias/registry", key_id)
        data = _layer(SEGMENT * 37 + 123)
        digest = digest_of(data)
        key = await blobs.write(ACCOUNT, "alias/registry", digest, chunks(data))
        assert key.id == key_id
        assert await blobs.stat(digest, key_id) == len(data)
        assert await read(blobs, digest, key_id) == data
        rng = random.Random(13)
        edges = [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, len(data) - 1, len(data)]
        ranges = [(a, b) for a in edges for b in edges if a <= b]
        ranges += [
            tuple(sorted((rng.randrange(len(data)), rng.randrange(len(data))))) for _ in range(40)
        ]
        for start, end in ranges:
            assert await read(blobs, digest, key_id, start, end) == data[start:end], (start, end)
        empty = digest_of(b"")
        await blobs.write(ACCOUNT, key_id, empty, chunks(b""))
        assert await read(blobs, empty, key_id) == b""

    run(tmp_path, backend, scenario)


def test_nothing_plaintext_at_rest(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        data = _layer(SEGMENT * 8) + MARKER * 100
        await blobs.write(ACCOUNT, key_id, digest_of(data), chunks(data))
        stored = backend.objects()
        assert stored, "nothing was stored"
        for name, content in stored.items():
            assert MARKER not in content, name
        # Nor in the metadata database, which holds only sealed key material.
        for path in (tmp_path / "meta").rglob("*"):
            if path.is_file():
                assert MARKER not in path.read_bytes(), path

    run(tmp_path, backend, scenario)


def test_tampered_truncated_or_swapped_bytes_fail(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        data, other = _layer(SEGMENT * 6), os.urandom(SEGMENT * 6)
        digest, other_digest = digest_of(data), digest_of(other)
        await blobs.write(ACCOUNT, key_id, digest, chunks(data))
        await blobs.write(ACCOUNT, key_id, other_digest, chunks(other))
        address = stored_address(digest, key_id)
        original = backend.get(address)

        flipped = bytearray(original)
        flipped[-SEGMENT // 2] ^= 0x01  # inside the last segment
        backend.put(address, bytes(flipped))
        with pytest.raises(BlobCorrupt):
            await read(blobs, digest, key_id)
        # A range that only touches intact segments is still served, and correctly.
        assert await read(blobs, digest, key_id, 0, SEGMENT) == data[:SEGMENT]

        backend.put(address, original[: len(original) - SEGMENT - 16])  # a whole segment cut
        with pytest.raises(BlobCorrupt):
            await read(blobs, digest, key_id)
        # Knowing the size, even a range far from the cut refuses the copy.
        with pytest.raises(BlobCorrupt, match="holds"):
            async for _ in blobs.read(digest, key_id, 0, 10, expected_size=len(data)):
                pass

        # The other blob's header (its wrapped data key) on this blob's segments.
        other_stored = backend.get(stored_address(other_digest, key_id))
        header_size = len(original) - (len(data) + 16 * 6)
        backend.put(address, other_stored[:header_size] + original[header_size:])
        with pytest.raises(BlobCorrupt):
            await read(blobs, digest, key_id)

        backend.put(address, original)
        assert await read(blobs, digest, key_id) == data

    run(tmp_path, backend, scenario)


def test_key_states_gate_reads(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        data = _layer(SEGMENT * 3)
        digest = digest_of(data)
        await blobs.write(ACCOUNT, key_id, digest, chunks(data))
        await kms.disable_key(ACCOUNT, key_id)
        with pytest.raises(KeyUnavailable, match="is Disabled") as caught:
            await read(blobs, digest, key_id)
        assert caught.value.state == "Disabled" and caught.value.key_arn.endswith(key_id)
        with pytest.raises(KeyUnavailable):
            await blobs.write(ACCOUNT, key_id, digest_of(b"x"), chunks(b"x"))
        await kms.enable_key(ACCOUNT, key_id)
        assert await read(blobs, digest, key_id) == data

        await kms.schedule_key_deletion(ACCOUNT, key_id, pending_window_days=7)
        with pytest.raises(KeyUnavailable) as caught:
            await read(blobs, digest, key_id, 5, 10)
        assert caught.value.state == "PendingDeletion"
        await kms.cancel_key_deletion(ACCOUNT, key_id)
        await kms.enable_key(ACCOUNT, key_id)
        assert await read(blobs, digest, key_id, 5, 10) == data[5:10]

        await kms.schedule_key_deletion(ACCOUNT, key_id, pending_window_days=7)
        clock.now += 8 * 86400
        await kms.destroy_due_keys()
        with pytest.raises(KeyUnavailable) as caught:
            await read(blobs, digest, key_id)
        assert caught.value.state == "Deleted"

    run(tmp_path, backend, scenario)


def test_rotation_keeps_old_blobs_readable(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        old, new = _layer(SEGMENT * 2), os.urandom(SEGMENT * 2 + 7)
        await blobs.write(ACCOUNT, key_id, digest_of(old), chunks(old))
        await kms.rotate_key_on_demand(ACCOUNT, key_id)
        await blobs.write(ACCOUNT, key_id, digest_of(new), chunks(new))
        assert await read(blobs, digest_of(old), key_id) == old
        assert await read(blobs, digest_of(new), key_id) == new

    run(tmp_path, backend, scenario)


def test_deduplication_is_per_key_and_copies_reencrypt(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        one, two = await new_key(kms), await new_key(kms)
        data = _layer(SEGMENT * 4)
        digest = digest_of(data)
        await blobs.write(ACCOUNT, one, digest, chunks(data))
        first = backend.get(stored_address(digest, one))
        await blobs.write(ACCOUNT, one, digest, chunks(data))  # already there: untouched
        assert backend.get(stored_address(digest, one)) == first
        await blobs.copy(ACCOUNT, digest, one, two)
        second = backend.get(stored_address(digest, two))
        assert second != first and len(backend.objects()) == 2
        assert await read(blobs, digest, two) == data
        # A copy under one key is not readable as the other's.
        backend.put(stored_address(digest, two), first)
        with pytest.raises(BlobCorrupt):
            await read(blobs, digest, two)

    run(tmp_path, backend, scenario)


def test_a_wrong_digest_commits_nothing(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        data = os.urandom(SEGMENT * 3)
        with pytest.raises(ValueError, match="does not match"):
            await blobs.write(ACCOUNT, key_id, digest_of(b"other"), chunks(data))
        assert not await blobs.exists(digest_of(b"other"), key_id)
        assert backend.objects() == {}  # neither a blob nor upload leftovers

    run(tmp_path, backend, scenario)


def test_a_finished_upload_is_encrypted_and_dropped(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        data = _layer(SEGMENT * 5)
        store = blobs.store
        await store.upload_create("up-1")

        async def one_block() -> AsyncIterator[list[bytes]]:
            yield [data]

        await store.upload_append("up-1", 0, one_block())
        await blobs.write_upload(ACCOUNT, key_id, digest_of(data), "up-1", len(data))
        assert await store.upload_size("up-1") is None
        assert await read(blobs, digest_of(data), key_id) == data
        for name, content in backend.objects().items():
            assert MARKER not in content, name

    run(tmp_path, backend, scenario)
