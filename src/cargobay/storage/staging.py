"""Chunked uploads into a KMS repository, staged in the blob's final encrypted layout.

At `POST` the upload gets a data key of its own (GenerateDataKey under the repository's key,
the upload id as encryption context) and its staged object starts with the blob's header
(version 2 of `crypto.layout`; the key reference holds the upload id and the wrapped key).
Each PATCH seals the full segments it completes (`crypto.segments`, random nonces) straight
after those before it. The last 1..S plaintext bytes, the segment that may yet turn out to be
the final one, are held back: sealed as a TAIL segment in a small store object of their own,
`<upload>-t<size>`, named after the upload size it completes. Completion seals that tail as
the final segment (binding the blob's digest) after the others and commits the staged object
as the blob's copy: nothing is read back or encrypted twice, and no plaintext is at rest.

Crash safety is as for plaintext uploads: the database's size says which segments and which
tail object count. Bytes past the counted segments (an interrupted append) are overwritten by
the next append; a tail object of a size that was never recorded is ignored, and expires with
abandoned uploads. The previous tail object is deleted only after the new size is recorded
(`settle`), so an upload can always be resumed from what the database says.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass

from cargobay.crypto import layout, segments
from cargobay.kms.errors import InvalidCiphertextException
from cargobay.kms.model import ENABLED
from cargobay.kms.service import KmsService
from cargobay.storage.base import BlobStore
from cargobay.storage.encrypted import (
    KeyUnavailable,
    staged_key_ref,
    stored_address,
    upload_context,
)

# Plaintext sealed per thread hand-off (whole segments).
BATCH_BYTES = 1024 * 1024

Blocks = AsyncIterator[list[bytes]]
Sink = Callable[[bytes], None]


class StagingCorrupt(Exception):
    """The staged bytes are not what this registry wrote (tampered, cut, or foreign)."""


@dataclass(slots=True)
class StagedPosition:
    """An encrypted upload of `size` plaintext bytes; `tail` is the plaintext of its held-back
    segment when this worker has it (None: read the tail object)."""

    sealer: segments.SegmentSealer
    size: int
    tail: bytes | None

    @property
    def full_segments(self) -> int:
        return _full(self.size, self.sealer.segment_size)

    @property
    def segments_end(self) -> int:
        """The stored offset where the held-back segment goes."""
        sealed = self.sealer.segment_size + segments.OVERHEAD
        return len(self.sealer.header) + self.full_segments * sealed


def _full(size: int, segment_size: int) -> int:
    """Full segments sealed before the held-back one (which holds 1..S bytes, or none)."""
    return (size - 1) // segment_size if size else 0


def tail_id(upload_id: str, size: int) -> str:
    return f"{upload_id}-t{size}"


def _tail_aad(size: int) -> bytes:
    return size.to_bytes(8, "big")


class EncryptedStaging:
    """Encrypted upload data in a BlobStore's upload area, under KMS data keys."""

    def __init__(
        self,
        store: BlobStore,
        kms: KmsService,
        segment_size: int = layout.DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.store = store
        self.kms = kms
        self.segment_size = segment_size

    async def create(self, account_id: str, key_id: str, upload_id: str) -> StagedPosition:
        """Write the header of a new upload (already created in the store)."""
        out = await self.kms.generate_data_key(
            account_id, key_id, key_spec="AES_256", encryption_context=upload_context(upload_id)
        )
        ref = staged_key_ref(upload_id, out["CiphertextBlob"])
        header = layout.Header(
            self.segment_size, os.urandom(layout.PREFIX_SIZE), ref, layout.VERSION_STAGED
        ).encode()
        await self.store.upload_append(upload_id, 0, _one(header))
        return StagedPosition(
            segments.SegmentSealer(out["Plaintext"], header, self.segment_size), 0, b""
        )

    async def append(
        self, upload_id: str, at: StagedPosition, blocks: Blocks, sink: Sink | None = None
    ) -> StagedPosition:
        """Seal `blocks` after `at` (passing each new plaintext chunk to `sink`, in the sealing
        thread); the returned position is where the upload now ends. `at` and its tail object
        are left untouched, so a failed append can be retried from it."""
        sealer, size_s = at.sealer, at.sealer.segment_size
        tail = at.tail if at.tail is not None else await self._read_tail(upload_id, at)
        first = at.full_segments
        kept = bytearray()  # the new held-back plaintext
        added = 0

        def seal(data: memoryview, whole: int, index: int, fresh: list[bytes]) -> bytearray:
            if sink is not None:
                for chunk in fresh:
                    sink(chunk)
            return sealer.seal_middle(data[:whole], index)

        async def sealed() -> Blocks:
            nonlocal added
            pending: list[bytes] = [tail] if tail else []
            fresh: list[bytes] = []
            count, index = len(tail), first
            job: asyncio.Future[bytearray] | None = None
            loop = asyncio.get_running_loop()
            # Whole segments seal in a thread while the loop receives the next ones; the
            # last 1..S bytes stay behind, since they may be the final segment.
            async for block in blocks:
                for chunk in block:
                    if chunk:
                        pending.append(chunk)
                        fresh.append(chunk)
                        count += len(chunk)
                        added += len(chunk)
                if count > BATCH_BYTES:
                    data = memoryview(b"".join(pending))  # the one copy of these bytes
                    whole = (count - 1) // size_s * size_s
                    done = None if job is None else await job
                    job = loop.run_in_executor(None, seal, data, whole, index, fresh)
                    index += whole // size_s
                    pending, fresh, count = [data[whole:]], [], count - whole  # type: ignore[list-item]
                    if done:
                        yield [done]
            if job is not None:
                done = await job
                if done:
                    yield [done]
            data = memoryview(b"".join(pending))
            whole = (count - 1) // size_s * size_s if count else 0
            done = await asyncio.to_thread(seal, data, whole, index, fresh)
            kept.extend(data[whole:])
            if done:
                yield [done]

        await self.store.upload_append(upload_id, at.segments_end, sealed())
        if not added:
            return at
        new = StagedPosition(sealer, at.size + added, bytes(kept))
        sealed_tail = sealer.seal(new.tail, new.full_segments, segments.TAIL, _tail_aad(new.size))
        name = tail_id(upload_id, new.size)
        # One left by an append that was never recorded is overwritten.
        with contextlib.suppress(FileExistsError):
            await self.store.upload_create(name)
        await self.store.upload_append(name, 0, _one(sealed_tail))
        return new

    async def settle(self, upload_id: str, previous_size: int, size: int) -> None:
        """The new size is recorded: the previous tail object no longer counts."""
        if previous_size and previous_size != size:
            await self.store.upload_delete(tail_id(upload_id, previous_size))

    async def discard(self, upload_id: str, size: int) -> None:
        """Drop an upload's data (cancelled, or committed) and its tail object."""
        await self.store.upload_delete(upload_id)
        if size:
            await self.store.upload_delete(tail_id(upload_id, size))

    async def position(
        self, account_id: str, upload_id: str, size: int, sink: Sink | None = None
    ) -> StagedPosition:
        """The upload's state from the store (a worker that has not seen it): its data key,
        and its first `size` plaintext bytes decrypted into `sink`."""
        header = await self._read_header(upload_id)
        sealer = segments.SegmentSealer(
            await self._data_key(account_id, upload_id, header.key_ref),
            header.encode(),
            header.segment_size,
        )
        at = StagedPosition(sealer, size, None)
        sealed_size = sealer.segment_size + segments.OVERHEAD
        stored = await self.store.upload_size(upload_id)
        if stored is None or stored < at.segments_end:
            raise StagingCorrupt(f"upload {upload_id} holds fewer bytes than were acknowledged")
        cursor, index = bytearray(), 0
        source = self.store.upload_read(upload_id, at.segments_end)
        skip = len(sealer.header)
        async with aclosing(source):  # type: ignore[type-var]
            async for chunk in source:
                view = memoryview(chunk)
                if skip:
                    taken = min(skip, len(view))
                    view, skip = view[taken:], skip - taken
                cursor += view
                whole = len(cursor) // sealed_size * sealed_size
                if whole:
                    plain = await asyncio.to_thread(
                        _open_many, sealer, bytes(cursor[:whole]), index, sealed_size
                    )
                    del cursor[:whole]
                    index += whole // sealed_size
                    if sink is not None:
                        for piece in plain:
                            sink(piece)
        if cursor or index != at.full_segments:
            raise StagingCorrupt(f"upload {upload_id} holds fewer bytes than were acknowledged")
        at.tail = await self._read_tail(upload_id, at)
        if sink is not None and at.tail:
            sink(at.tail)
        return at

    async def commit(
        self, account_id: str, key_id: str, upload_id: str, at: StagedPosition, digest: str
    ) -> None:
        """Seal the held-back segment as the final one (binding `digest`) and commit the
        staged object as the copy of `digest` under `key_id`, unless that copy exists."""
        key = await self.kms.key(account_id, key_id)
        if key.state != ENABLED:
            raise KeyUnavailable(key.arn, key.state)
        address = stored_address(digest, key.id)
        if await self.store.stat(address) is None:
            tail = at.tail if at.tail is not None else await self._read_tail(upload_id, at)
            final = at.sealer.seal(tail, at.full_segments, segments.FINAL, digest.encode())
            stored = await self.store.upload_append(upload_id, at.segments_end, _one(final))
            await self.store.upload_commit(upload_id, address, stored)
        await self.discard(upload_id, at.size)

    # ------------------------------------------------------------------ reading back

    async def _read_header(self, upload_id: str) -> layout.Header:
        probe = await self._read_upload(upload_id, 512)
        try:
            length = layout.header_length(probe)
            if length > len(probe):
                probe = await self._read_upload(upload_id, length)
            header = layout.parse_header(probe[:length])
        except layout.StreamError as exc:
            raise StagingCorrupt(f"upload {upload_id}: {exc}") from None
        if header.version != layout.VERSION_STAGED:
            raise StagingCorrupt(f"upload {upload_id} is not staged encrypted data")
        return header

    async def _read_upload(self, upload_id: str, length: int) -> bytes:
        source = self.store.upload_read(upload_id, length)
        async with aclosing(source):  # type: ignore[type-var]
            return b"".join([chunk async for chunk in source])

    async def _read_tail(self, upload_id: str, at: StagedPosition) -> bytes:
        if not at.size:
            return b""
        name = tail_id(upload_id, at.size)
        stored = await self.store.upload_size(name)
        if stored is None:
            raise StagingCorrupt(f"upload {upload_id} has lost its last segment")
        sealed = await self._read_upload(name, stored)
        try:
            tail = at.sealer.open(sealed, at.full_segments, segments.TAIL, _tail_aad(at.size))
        except layout.StreamError as exc:
            raise StagingCorrupt(f"upload {upload_id}: the last segment: {exc}") from None
        expected = at.size - at.full_segments * at.sealer.segment_size
        if len(tail) != expected:
            raise StagingCorrupt(f"upload {upload_id}: the last segment has the wrong size")
        return tail

    async def _data_key(self, account_id: str, upload_id: str, key_ref: bytes) -> bytes:
        from cargobay.storage.encrypted import parse_staged_key_ref

        try:
            owner, wrapped = parse_staged_key_ref(key_ref)
        except ValueError:
            raise StagingCorrupt(f"upload {upload_id}: its key reference is damaged") from None
        if owner != upload_id:
            raise StagingCorrupt(f"upload {upload_id} holds another upload's data")
        try:
            out = await self.kms.decrypt(
                account_id, wrapped, encryption_context=upload_context(upload_id)
            )
        except InvalidCiphertextException:
            raise StagingCorrupt(f"the data key of upload {upload_id} is damaged") from None
        return out["Plaintext"]


def _open_many(
    sealer: segments.SegmentSealer, data: bytes, first: int, sealed_size: int
) -> list[bytes]:
    view = memoryview(data)
    try:
        return [
            sealer.open(view[at : at + sealed_size], first + i, segments.MIDDLE)
            for i, at in enumerate(range(0, len(view), sealed_size))
        ]
    except layout.StreamError as exc:
        raise StagingCorrupt(str(exc)) from None


async def _one(data: bytes) -> Blocks:
    yield [data]
