"""Encrypted staging of uploads into KMS repositories (cargobay.storage.staging) on the
filesystem store and on S3: chunks sealed before they are stored, resumption from the stored
records alone, an interrupted append that leaves the acknowledged bytes intact, and tampering
or a missing tail refused."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cargobay.kms.service import KmsService
from cargobay.storage import staging
from cargobay.storage.encrypted import EncryptedBlobs
from cargobay.storage.staging import EncryptedStaging, StagingCorrupt
from kmshelp import ACCOUNT, Clock
from storage.test_encrypted_store import MARKER, Backend, _layer, make_backend, new_key, run

RECORD = 1000  # small records: many in small uploads


@pytest.fixture(params=["filesystem", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    return make_backend(request, tmp_path)


@pytest.fixture(autouse=True)
def _small_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging, "RECORD_BYTES", RECORD)


async def _blocks(data: bytes, size: int = 700) -> AsyncIterator[list[bytes]]:
    for i in range(0, len(data), size):
        yield [data[i : i + size]]


async def _plaintext(stage: EncryptedStaging, upload_id: str, size: int) -> bytes:
    return b"".join([piece async for piece in stage.plaintext(ACCOUNT, upload_id, size)])


def _no_marker(backend: Backend) -> None:
    for name, content in backend.objects().items():
        assert MARKER not in content, name


def test_chunks_are_sealed_and_resumable_from_the_store(tmp_path: Path, backend: Backend) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        stage = EncryptedStaging(blobs.store, kms)
        data = _layer(RECORD * 7 + 321)
        await blobs.store.upload_create("up-1")
        at = await stage.create(ACCOUNT, key_id, "up-1")
        seen = hashlib.sha256()
        cut = RECORD * 3 + 17  # two PATCHes, the first ending mid-record
        at = await stage.append("up-1", at, _blocks(data[:cut]), seen.update)
        first = at
        at = await stage.append("up-1", at, _blocks(data[cut:], 1900), seen.update)
        assert at.size == len(data)
        assert seen.hexdigest() == hashlib.sha256(data).hexdigest()
        _no_marker(backend)

        # Another worker, knowing only the acknowledged size, finds the same end and hash.
        rebuilt = hashlib.sha256()
        found = await stage.position(ACCOUNT, "up-1", cut, rebuilt.update)
        assert (found.size, found.stored) == (first.size, first.stored)
        assert rebuilt.hexdigest() == hashlib.sha256(data[:cut]).hexdigest()
        assert await _plaintext(stage, "up-1", len(data)) == data

    run(tmp_path, backend, scenario)


def test_an_interrupted_append_keeps_what_was_acknowledged(
    tmp_path: Path, backend: Backend
) -> None:
    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        stage = EncryptedStaging(blobs.store, kms)
        data = _layer(RECORD * 6)
        await blobs.store.upload_create("up-2")
        at = await stage.create(ACCOUNT, key_id, "up-2")
        at = await stage.append("up-2", at, _blocks(data[:2500]))

        async def dropped() -> AsyncIterator[list[bytes]]:
            yield [b"x" * 2100]  # two whole records reach the store, then the client is gone
            raise ConnectionResetError

        with pytest.raises(ConnectionResetError):
            await stage.append("up-2", at, dropped())
        # The database still says 2500: the records past them are ignored, then overwritten.
        resumed = await stage.position(ACCOUNT, "up-2", 2500)
        assert resumed.stored == at.stored
        done = await stage.append("up-2", resumed, _blocks(data[2500:]))
        assert done.size == len(data)
        assert await _plaintext(stage, "up-2", len(data)) == data

    run(tmp_path, backend, scenario)


def test_tampered_or_missing_staged_bytes_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    files = Backend(f"file://{root}", root=root)

    async def scenario(blobs: EncryptedBlobs, kms: KmsService, clock: Clock) -> None:
        key_id = await new_key(kms)
        stage = EncryptedStaging(blobs.store, kms)
        data = _layer(RECORD * 3)
        await blobs.store.upload_create("up-3")
        at = await stage.create(ACCOUNT, key_id, "up-3")
        at = await stage.append("up-3", at, _blocks(data))
        # More bytes than were stored: refused, never padded.
        with pytest.raises(StagingCorrupt):
            await stage.position(ACCOUNT, "up-3", len(data) + 1)
        (path,) = [p for p in root.rglob("*up-3*") if p.is_file()]
        stored = bytearray(path.read_bytes())
        stored[-20] ^= 0x01
        path.write_bytes(bytes(stored))
        with pytest.raises(StagingCorrupt):
            await stage.position(ACCOUNT, "up-3", len(data))
        # An untouched prefix still reads.
        assert (await stage.position(ACCOUNT, "up-3", RECORD)).size == RECORD

    run(tmp_path, files, scenario)
