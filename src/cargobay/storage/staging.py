"""Upload data of a KMS repository, encrypted while it is staged (before the digest is known).

A chunked upload into a repository under a KMS key gets its own data key (GenerateDataKey
under the repository's key, the upload id as encryption context), wrapped in the staged
object's header; every chunk is sealed before it reaches the store, so no plaintext byte is
at rest even while a push is half done. On completion the verified plaintext is read back,
decrypted, and written as the blob's envelope-encrypted copy (`storage.encrypted`), whose
data key is bound to the digest, which only then exists.

Layout (integers big-endian):

    header = b"CBU1" | len u16 | wrapped data key
    record = plaintext length u32 | nonce 12B | AES-256-GCM(plaintext) (ciphertext || tag)

with the upload id, the record's plaintext offset and its length as associated data, so
records cannot be reordered, moved between uploads or cut. Each record has a random nonce:
an interrupted append is retried at the same offset with fresh nonces, never reusing one.

The store appends at a byte offset and discards what lies past it (`BlobStore.upload_append`),
exactly as for plaintext staging, so the crash-safety of uploads is unchanged: the database's
plaintext size says how many records count; bytes past them (an interrupted append) are
ignored when read and overwritten by the next append. The stored offset that matches a
plaintext size is found by reading the records (a worker keeps it in `StagedPosition`).
"""

from __future__ import annotations

import asyncio
import os
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cargobay.kms.errors import InvalidCiphertextException
from cargobay.kms.service import KmsService
from cargobay.storage.base import BlobStore

MAGIC = b"CBU1"
RECORD_BYTES = 1024 * 1024  # plaintext per record (the last of each append may be shorter)
_MAX_RECORD = 16 * 1024 * 1024  # what a reader accepts, whatever RECORD_BYTES was when written
_RECORD = struct.Struct(">I12s")
_AAD = struct.Struct(">QI")
_TAG = 16

Blocks = AsyncIterator[list[bytes]]
Sink = Callable[[bytes], None]


class StagingCorrupt(Exception):
    """The staged bytes are not what this registry wrote (tampered, cut, or foreign)."""


@dataclass(slots=True)
class StagedPosition:
    """Where an encrypted upload ends: `size` plaintext bytes at stored offset `stored`."""

    aead: AESGCM
    size: int
    stored: int


def _context(upload_id: str) -> dict[str, str]:
    return {"cargobay:upload-id": upload_id}


class EncryptedStaging:
    """Encrypted upload data in a BlobStore's upload area, under KMS data keys."""

    def __init__(self, store: BlobStore, kms: KmsService) -> None:
        self.store = store
        self.kms = kms

    async def create(self, account_id: str, key_id: str, upload_id: str) -> StagedPosition:
        """Write the header of a new upload (already created in the store)."""
        out = await self.kms.generate_data_key(
            account_id, key_id, key_spec="AES_256", encryption_context=_context(upload_id)
        )
        wrapped: bytes = out["CiphertextBlob"]
        header = MAGIC + struct.pack(">H", len(wrapped)) + wrapped

        async def blocks() -> Blocks:
            yield [header]

        stored = await self.store.upload_append(upload_id, 0, blocks())
        return StagedPosition(AESGCM(out["Plaintext"]), 0, stored)

    async def append(
        self, upload_id: str, at: StagedPosition, blocks: Blocks, sink: Sink | None = None
    ) -> StagedPosition:
        """Seal `blocks` as records after `at` (passing each plaintext piece to `sink`, in
        the sealing thread); the returned position is where the upload now ends. `at` is
        left untouched, so a failed append can be retried from it."""
        aad_id = upload_id.encode()
        size = at.size

        def seal(data: bytes | memoryview, offset: int) -> list[bytes]:
            out: list[bytes] = []
            view = memoryview(data)
            for start in range(0, len(view), RECORD_BYTES):
                piece = view[start : start + RECORD_BYTES]
                if sink is not None:
                    sink(piece)  # type: ignore[arg-type]
                nonce = os.urandom(12)
                aad = aad_id + _AAD.pack(offset + start, len(piece))
                out.append(_RECORD.pack(len(piece), nonce))
                out.append(at.aead.encrypt(nonce, piece, aad))
            return out

        async def sealed() -> Blocks:
            nonlocal size
            pending: list[bytes | memoryview] = []
            count = 0
            # Whole records seal in a thread while the loop receives the next ones.
            job: asyncio.Future[list[bytes]] | None = None
            async for block in blocks:
                for chunk in block:
                    pending.append(chunk)
                    count += len(chunk)
                if count >= RECORD_BYTES:
                    data = memoryview(b"".join(pending))  # the one copy of these bytes
                    whole = count - count % RECORD_BYTES
                    pending, count = ([data[whole:]] if whole < len(data) else []), count - whole
                    done = None if job is None else await job
                    job = asyncio.get_running_loop().run_in_executor(None, seal, data[:whole], size)
                    size += whole
                    if done is not None:
                        yield done
            if job is not None:
                yield await job
            if count:
                yield await asyncio.to_thread(seal, b"".join(pending), size)
                size += count

        stored = await self.store.upload_append(upload_id, at.stored, sealed())
        return StagedPosition(at.aead, size, stored)

    async def position(
        self, account_id: str, upload_id: str, size: int, sink: Sink | None = None
    ) -> StagedPosition:
        """Read the first `size` plaintext bytes back (into `sink`) and return where they end."""
        position: list[StagedPosition] = []
        async with aclosing(self._records(account_id, upload_id, size, position)) as records:
            async for piece in records:
                if sink is not None:
                    sink(piece)
        return position[0]

    async def plaintext(self, account_id: str, upload_id: str, size: int) -> AsyncIterator[bytes]:
        """The upload's first `size` plaintext bytes."""
        async with aclosing(self._records(account_id, upload_id, size, [])) as records:
            async for piece in records:
                yield piece

    async def _records(
        self, account_id: str, upload_id: str, size: int, found: list[StagedPosition]
    ) -> AsyncIterator[bytes]:
        stored_size = await self.store.upload_size(upload_id)
        if stored_size is None:
            raise FileNotFoundError(f"upload {upload_id} has no data")
        cursor = _Cursor()
        aead: AESGCM | None = None
        ref_len: int | None = None
        offset, consumed = 0, 0  # plaintext yielded, stored bytes parsed
        aad_id = upload_id.encode()
        source = self.store.upload_read(upload_id, stored_size)
        async with aclosing(source):  # type: ignore[type-var]
            async for chunk in source:
                cursor.push(chunk)
                if aead is None:
                    if ref_len is None:
                        if cursor.size < 6:
                            continue
                        fixed = bytes(cursor.take(6))
                        if fixed[:4] != MAGIC:
                            raise StagingCorrupt(f"upload {upload_id} is not encrypted staging")
                        (ref_len,) = struct.unpack(">H", fixed[4:])
                    if cursor.size < ref_len:
                        continue
                    wrapped = bytes(cursor.take(ref_len))
                    aead = await self._data_key(account_id, upload_id, wrapped)
                    consumed = 6 + ref_len
                while offset < size and cursor.size >= _RECORD.size:
                    length, nonce = _RECORD.unpack(cursor.peek(_RECORD.size))
                    if not 0 < length <= min(_MAX_RECORD, size - offset):
                        raise StagingCorrupt(f"upload {upload_id}: a record does not fit")
                    end = _RECORD.size + length + _TAG
                    if cursor.size < end:
                        break
                    cursor.take(_RECORD.size)
                    sealed = cursor.take(length + _TAG)
                    aad = aad_id + _AAD.pack(offset, length)
                    try:
                        plain = await asyncio.to_thread(aead.decrypt, nonce, sealed, aad)
                    except InvalidTag:
                        raise StagingCorrupt(f"upload {upload_id}: a record was altered") from None
                    offset += length
                    consumed += end
                    yield plain
                if offset >= size and aead is not None:
                    break
        if aead is None or offset != size:
            raise StagingCorrupt(f"upload {upload_id} holds fewer bytes than were acknowledged")
        found.append(StagedPosition(aead, size, consumed))

    async def _data_key(self, account_id: str, upload_id: str, wrapped: bytes) -> AESGCM:
        try:
            out = await self.kms.decrypt(
                account_id, wrapped, encryption_context=_context(upload_id)
            )
        except InvalidCiphertextException:
            raise StagingCorrupt(f"the data key of upload {upload_id} is damaged") from None
        return AESGCM(out["Plaintext"])


class _Cursor:
    """Received chunks consumed front to back without copying them into one buffer: a take
    that lies within one chunk is a view of it; only one spanning chunks is joined."""

    def __init__(self) -> None:
        self.parts: deque[memoryview] = deque()
        self.size = 0

    def push(self, chunk: bytes) -> None:
        if chunk:
            self.parts.append(memoryview(chunk))
            self.size += len(chunk)

    def peek(self, n: int) -> bytes:
        out = bytearray()
        for part in self.parts:
            out += part[: n - len(out)]
            if len(out) == n:
                break
        return bytes(out)

    def take(self, n: int) -> bytes | memoryview:
        self.size -= n
        first = self.parts[0]
        if len(first) >= n:
            if len(first) == n:
                self.parts.popleft()
            else:
                self.parts[0] = first[n:]
            return first[:n]
        pieces: list[memoryview] = []
        while n:
            part = self.parts.popleft()
            if len(part) > n:
                pieces.append(part[:n])
                self.parts.appendleft(part[n:])
                n = 0
            else:
                pieces.append(part)
                n -= len(part)
        return b"".join(pieces)
