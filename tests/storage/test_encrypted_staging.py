"""Chunked uploads into KMS repositories staged in the blob's final layout
(cargobay.storage.staging) on the filesystem store and on S3: chunks sealed as whole segments
before they are stored, the last partial segment held back and re-sealed by the next append,
resumption from the store alone, an interrupted append that leaves the acknowledged bytes
intact (and never reuses a nonce), completion without re-encryption, and tampering refused."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cargobay.crypto import layout, segments
from cargobay.kms.service import KmsService
from cargobay.storage import staging
from cargobay.storage.encrypted import BlobCorrupt, EncryptedBlobs, stored_address
from cargobay.storage.staging import EncryptedStaging, StagedPosition, StagingCorrupt
from kmshelp import ACCOUNT, Clock
from storage.test_encrypted_store import (
    MARKER,
    SEGMENT,
    Backend,
    _layer,
    digest_of,
    make_backend,
    new_key,
    read,
    run,
)

SEALED = SEGMENT + segments.OVERHEAD


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, tmp_path)


@pytest.fixture(autouse=True)
def _small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "BATCH_BYTES", 3 * SEGMENT + 100)


async def _blocks(data: bytes, size: int = 700) -> AsyncIterator[list[bytes]]:
    for i in range(0, len(data), size):
        yield [data[i : i + size]]


def _no_marker(backend: Backend) -> None:
    for name, content in backend.objects().items():
        assert MARKER not in content, name


async def _start(blobs: EncryptedBlobs, kms: KmsService, upload_id: str) -> StagedPosition:
    stage = EncryptedStaging(blobs.store, kms, segment_size=SEGMENT)
    await blobs.store.upload_create(upload_id)
    return await stage.create(ACCOUNT, await new_key(kms), upload_id)


def test_chunks_staged_in_final_layout_commit_without_reencryption(
    tmp_path: Path, backend: Backend
) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        stage = EncryptedStaging(blobs.store, kms, segment_size=SEGMENT)
        data = _layer(SEGMENT * 9 + 321)
        await blobs.store.upload_create("up-1")
        at = await stage.create(ACCOUNT, key_id, "up-1")
        seen = hashlib.sha256()
        # PATCHes ending mid-segment, exactly on a boundary, one byte, and a large one.
        cuts = [0, SEGMENT + 17, 2 * SEGMENT, 2 * SEGMENT + 1, 3 * SEGMENT - 5, len(data)]
        sizes = []
        for start, end in itertools.pairwise(cuts):
            before = at.size
            at = await stage.append("up-1", at, _blocks(data[start:end]), seen.update)
            await stage.settle("up-1", before, at.size)
            sizes.append(at.size)
        assert sizes == cuts[1:]
        assert seen.hexdigest() == hashlib.sha256(data).hexdigest()
        _no_marker(backend)

        # Another worker, knowing only the acknowledged size, rebuilds the same hash and tail.
        rebuilt = hashlib.sha256()
        found = await stage.position(ACCOUNT, "up-1", len(data), rebuilt.update)
        assert rebuilt.hexdigest() == seen.hexdigest()
        assert found.tail == at.tail

        digest = digest_of(data)
        await stage.commit(ACCOUNT, key_id, "up-1", found, digest)
        assert await blobs.store.upload_size("up-1") is None
        assert await blobs.store.upload_size(staging.tail_id("up-1", len(data))) is None
        stored = backend.get(stored_address(digest, key_id))
        assert layout.parse_header(stored).version == layout.VERSION_STAGED
        assert await read(blobs, digest, key_id) == data
        for start, end in [(0, 1), (SEGMENT - 3, SEGMENT + 3), (1500, 7 * SEGMENT + 9)]:
            assert await read(blobs, digest, key_id, start, end) == data[start:end]
        _no_marker(backend)

    run(tmp_path, backend, scenario)


@pytest.mark.parametrize("size", [0, 5, SEGMENT, 3 * SEGMENT])
def test_edge_sizes_round_trip(tmp_path: Path, size: int) -> None:
    root = tmp_path / "storage"
    files = Backend(f"file://{root}", root=root)

    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        stage = EncryptedStaging(blobs.store, kms, segment_size=SEGMENT)
        data = bytes(range(256)) * (size // 256) + bytes(size % 256)
        await blobs.store.upload_create("up-e")
        at = await stage.create(ACCOUNT, key_id, "up-e")
        at = await stage.append("up-e", at, _blocks(data))
        await stage.commit(ACCOUNT, key_id, "up-e", at, digest_of(data))
        assert await read(blobs, digest_of(data), key_id) == data

    run(tmp_path, files, scenario)


def test_an_interrupted_append_keeps_what_was_acknowledged(
    tmp_path: Path, backend: Backend
) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        stage = EncryptedStaging(blobs.store, kms, segment_size=SEGMENT)
        data = _layer(SEGMENT * 6)
        await blobs.store.upload_create("up-2")
        at = await stage.create(ACCOUNT, key_id, "up-2")
        at = await stage.append("up-2", at, _blocks(data[:2500]))

        async def dropped() -> AsyncIterator[list[bytes]]:
            yield [b"x" * (4 * SEGMENT)]  # whole segments reach the store, then the client goes
            raise ConnectionResetError

        with pytest.raises(ConnectionResetError):
            await stage.append("up-2", at, dropped())
        # The database still says 2500: the segments past them are ignored, then overwritten.
        resumed = await stage.position(ACCOUNT, "up-2", 2500)
        assert resumed.tail == data[2 * SEGMENT : 2500]
        done = await stage.append("up-2", resumed, _blocks(data[2500:]))
        assert done.size == len(data)
        await stage.commit(ACCOUNT, key_id, "up-2", done, digest_of(data))
        assert await read(blobs, digest_of(data), key_id) == data

    run(tmp_path, backend, scenario)


def test_a_retried_segment_gets_a_fresh_nonce(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    files = Backend(f"file://{root}", root=root)

    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        at = await _start(blobs, kms, "up-n")
        stage = EncryptedStaging(blobs.store, kms, segment_size=SEGMENT)
        path = next(p for p in root.rglob("up-n") if p.is_file())
        header = len(at.sealer.header)
        await stage.append("up-n", at, _blocks(b"a" * (2 * SEGMENT)))
        first = path.read_bytes()[header : header + layout.NONCE_SIZE]
        await stage.append("up-n", at, _blocks(b"b" * (2 * SEGMENT)))  # the same offset again
        second = path.read_bytes()[header : header + layout.NONCE_SIZE]
        assert first != second

    run(tmp_path, files, scenario)


def test_tampered_moved_or_missing_staged_bytes_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    files = Backend(f"file://{root}", root=root)

    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        stage = EncryptedStaging(blobs.store, kms, segment_size=SEGMENT)
        data = _layer(SEGMENT * 3 + 10)
        await blobs.store.upload_create("up-3")
        at = await stage.create(ACCOUNT, key_id, "up-3")
        at = await stage.append("up-3", at, _blocks(data))
        # More bytes than were stored: refused, never padded.
        with pytest.raises(StagingCorrupt):
            await stage.position(ACCOUNT, "up-3", len(data) + SEGMENT)
        # A tail object of another size does not count for this one.
        tail = root.rglob(staging.tail_id("up-3", len(data)))
        (tail_path,) = [p for p in tail if p.is_file()]
        tail_path.rename(tail_path.with_name(staging.tail_id("up-3", len(data) - 1)))
        with pytest.raises(StagingCorrupt):
            await stage.position(ACCOUNT, "up-3", len(data) - 1)
        tail_path.with_name(staging.tail_id("up-3", len(data) - 1)).rename(tail_path)
        path = next(p for p in root.rglob("up-3") if p.is_file())
        stored = bytearray(path.read_bytes())
        stored[len(at.sealer.header) + SEALED + 40] ^= 0x01
        path.write_bytes(bytes(stored))
        with pytest.raises(StagingCorrupt):
            await stage.position(ACCOUNT, "up-3", len(data))
        stored[len(at.sealer.header) + SEALED + 40] ^= 0x01
        path.write_bytes(bytes(stored))

        # Committed, then moved to another digest's address: refused even for a Range that
        # touches only the first segment (the final one binds the digest).
        digest, other = digest_of(data), digest_of(b"other")
        await stage.commit(ACCOUNT, key_id, "up-3", at, digest)
        moved = stored_address(other, key_id).partition(":")[2]
        (root / "blobs" / "sha256" / moved[:2]).mkdir(parents=True, exist_ok=True)
        files.put(stored_address(other, key_id), files.get(stored_address(digest, key_id)))
        with pytest.raises(BlobCorrupt):
            await read(blobs, other, key_id, 0, 10)
        assert await read(blobs, digest, key_id, 0, 10) == data[:10]

    run(tmp_path, files, scenario)
