"""Uploads in S3: the bytes of an upload are a list of immutable piece objects, named by one
mutable state object, and a commit assembles the pieces server-side at the blob's key.

    _uploads/<id>/state.json           the upload's state: its pieces, in order, with sizes
    _uploads/<id>/<token>-<n>          pieces: immutable objects holding the upload's bytes

Appends. A PATCH buffers what it receives and writes a piece whenever `part_size` bytes are
buffered, so a node holds about one part per upload in memory, never a blob. The remainder at
the end of a request becomes a short last piece (the tail); the next append reads that tail back
(it is below 5 MiB, or a part cut by a truncating append) and merges it, so every piece but the
last is at least 5 MiB, the S3 minimum for a non-last multipart part. `state.json` is written
after the pieces it names and is the only mutable object, so every request sees either the old
or the new upload, on any node: a PATCH that lands on another node, or after a restart, reads
the state and carries on, and `read` (re-hashing after such a hop) reads the pieces back with
ranged GETs. Only one request appends at a time: the registry holds a lease on the
upload around every append and commit.

Commit. The object's key is fixed when a multipart upload is created, and the digest is only
known when the client finishes, so no multipart upload can be opened at the blob's address while
the data arrives. Instead, commit assembles the verified pieces server-side, once, straight into
the blob's key: CreateMultipartUpload at the blob key, one UploadPartCopy per piece (the last one
cut to the committed size with CopySourceRange), CompleteMultipartUpload. A one-piece upload is
one CopyObject. No byte passes through the node and no temporary whole-blob object exists; the
blob appears only when the completion succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cargobay.storage.base import Observer
from cargobay.storage.s3.config import MIN_PART
from cargobay.storage.s3.objects import CONCURRENCY, FAILURES, TAKEN, Objects
from cargobay.storage.s3.transport import S3Error

MAX_PARTS = 10_000
STATE = "state.json"
# A block up to this size (an ECR part, a small blob) is hashed on the loop, not in a thread.
HASH_HERE = 128 * 1024


@dataclass(frozen=True, slots=True)
class Piece:
    name: str  # key relative to the upload's folder
    size: int


@dataclass(slots=True)
class State:
    created: float
    pieces: list[Piece]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)

    def to_json(self) -> bytes:
        pieces = [[p.name, p.size] for p in self.pieces]
        return json.dumps({"v": 1, "created": self.created, "pieces": pieces}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> State:
        doc = json.loads(data)
        return cls(float(doc["created"]), [Piece(str(n), int(s)) for n, s in doc["pieces"]])


class Uploads:
    """The upload half of the S3 store, on its objects (see the module docstring)."""

    def __init__(self, objects: Objects) -> None:
        self.objects = objects
        self.root = f"{objects.prefix}_uploads/"

    def folder(self, upload_id: str) -> str:
        if not upload_id.replace("-", "").isalnum():
            raise ValueError(f"not an upload id: {upload_id!r}")
        return f"{self.root}{upload_id}/"

    async def load(self, upload_id: str) -> State:
        """The upload's state; FileNotFoundError when the upload does not exist."""
        try:
            data = await self.objects.get_bytes(self.folder(upload_id) + STATE)
        except FileNotFoundError:
            raise FileNotFoundError(f"upload {upload_id}") from None
        return State.from_json(data)

    async def _save(self, upload_id: str, state: State, *, if_none_match: bool = False) -> None:
        await self.objects.put(
            self.folder(upload_id) + STATE, state.to_json(), if_none_match=if_none_match
        )

    async def create(self, upload_id: str) -> None:
        try:
            await self._save(upload_id, State(time.time(), []), if_none_match=True)
        except S3Error as exc:
            if exc.code in TAKEN or str(exc.status) in TAKEN:
                raise FileExistsError(f"upload {upload_id}") from None
            raise

    async def size(self, upload_id: str) -> int | None:
        try:
            return (await self.load(upload_id)).size
        except FileNotFoundError:
            return None

    async def append(
        self,
        upload_id: str,
        offset: int,
        blocks: AsyncIterator[list[bytes]],
        observe: Observer | None = None,
    ) -> int:
        folder = self.folder(upload_id)
        state = await self.load(upload_id)
        if state.size < offset:
            raise FileNotFoundError(f"upload {upload_id} has lost data")
        # Keep whole pieces of full part size that end at or before the offset. The bytes
        # between them and the offset lie in the next piece (a short tail, or a part this
        # append cuts short): those are read back into the buffer and written again.
        kept: list[Piece] = []
        position = 0
        for piece in state.pieces:
            if position + piece.size > offset or piece.size < MIN_PART:
                break
            kept.append(piece)
            position += piece.size
        reread = state.pieces[len(kept)] if position < offset else None
        token = uuid.uuid4().hex[:16]
        written: list[Piece] = []
        buffer: list[bytes] = []
        buffered = 0
        loaded = False

        async def load_reread() -> None:
            nonlocal buffered, loaded
            loaded = True
            if reread is not None:
                data = await self.objects.read_all(folder + reread.name, offset - position)
                if len(data) != offset - position:
                    raise FileNotFoundError(f"upload {upload_id} has lost data")
                buffer.insert(0, data)
                buffered += len(data)

        async def flush() -> None:
            nonlocal buffer, buffered
            if len(kept) + len(written) >= MAX_PARTS:
                raise OSError(f"upload {upload_id} exceeds {MAX_PARTS} parts; raise part_size")
            piece = Piece(f"{token}-{len(written):05d}", buffered)
            await self.objects.put(folder + piece.name, buffer)
            written.append(piece)
            buffer, buffered = [], 0

        try:
            # Hash one block in a thread while the loop receives the next one.
            pending: asyncio.Future[None] | None = None
            async for block in blocks:
                if not block:
                    continue
                if not loaded:
                    await load_reread()
                if pending is not None:
                    await pending
                    pending = None
                length = sum(len(b) for b in block)
                if observe is not None:
                    if length <= HASH_HERE:
                        observe(block)  # microseconds: less than a thread hand-off
                    else:
                        pending = asyncio.ensure_future(asyncio.to_thread(observe, block))
                buffer.extend(block)
                buffered += length
                if buffered >= self.objects.config.part_size:
                    await flush()
            if pending is not None:
                await pending
            if not loaded:
                if offset == state.size:
                    return offset  # nothing sent, nothing cut: the upload is unchanged
                await load_reread()
            if buffered:
                await flush()
            new = State(state.created, kept + written)
            await self._save(upload_id, new)
        except BaseException:
            if written:
                await asyncio.shield(self.objects.delete_keys([folder + p.name for p in written]))
            raise
        # The pieces the new state no longer names (a re-read tail, cut parts) are garbage now.
        dropped = [folder + p.name for p in state.pieces if p not in new.pieces]
        if dropped:
            await self.objects.delete_keys(dropped)
        return new.size

    async def read(self, upload_id: str, length: int) -> AsyncIterator[bytes]:
        folder = self.folder(upload_id)
        state = await self.load(upload_id)
        for piece in state.pieces:
            if length <= 0:
                return
            take = min(piece.size, length)
            async for chunk in self.objects.stream(folder + piece.name, 0, take):
                yield chunk
            length -= take

    async def commit(self, upload_id: str, target: str, size: int | None = None) -> None:
        """Copy the upload's first `size` bytes (all when None) to the key `target`, then
        drop the upload. The caller has checked that no blob is there yet."""
        folder = self.folder(upload_id)
        state = await self.load(upload_id)
        size = state.size if size is None else size
        if size > state.size:
            raise FileNotFoundError(f"upload {upload_id} has lost data")
        # The pieces holding the first `size` bytes; the last one possibly cut short.
        ranges: list[tuple[Piece, int]] = []
        remaining = size
        for piece in state.pieces:
            if remaining <= 0:
                break
            ranges.append((piece, min(piece.size, remaining)))
            remaining -= piece.size
        objects = self.objects
        if not ranges:
            await objects.put(target, b"")
        elif len(ranges) == 1 and ranges[0][1] == ranges[0][0].size:
            await objects.call(objects.client.copy_object, target, folder + ranges[0][0].name)
        else:
            await self._assemble(target, [(folder + p.name, n, p.size) for p, n in ranges])
        await self.delete(upload_id)

    async def _assemble(self, target: str, sources: list[tuple[str, int, int]]) -> None:
        """One multipart upload at `target` whose parts are server-side copies of `sources`
        (key, bytes to take from its start, its size); visible only once complete."""
        objects, client = self.objects, self.objects.client
        mpu = await objects.call(client.create_multipart_upload, target)
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def copy(number: int, key: str, take: int, size: int) -> str:
            byte_range = f"bytes=0-{take - 1}" if take != size else None
            async with semaphore:
                return await objects.call(
                    client.upload_part_copy, target, mpu, number, key, byte_range
                )

        try:
            etags = await asyncio.gather(
                *(copy(i + 1, *source) for i, source in enumerate(sources))
            )
            await objects.call(client.complete_multipart_upload, target, mpu, list(etags))
        except BaseException:
            with contextlib.suppress(*FAILURES):
                await asyncio.shield(objects.call(client.abort_multipart_upload, target, mpu))
            raise

    async def delete(self, upload_id: str) -> None:
        folder = self.folder(upload_id)
        keys = [item.key async for item in self.objects.list(folder)]
        state = folder + STATE
        if state in keys:
            # The state first: from then on the upload is gone for every node.
            await self.objects.delete(state)
            keys.remove(state)
        await self.objects.delete_keys(keys)

    async def expire(self, older_than: float, blob_root: str) -> int:
        """Remove uploads (their objects) not written since the Unix time `older_than`, and
        abort multipart uploads under `blob_root` started before it (commits a crash
        interrupted). Returns how many uploads and multipart uploads were removed."""
        latest: dict[str, float] = {}
        keys: dict[str, list[str]] = {}
        async for item in self.objects.list(self.root):
            upload_id = item.key[len(self.root) :].partition("/")[0]
            modified = item.modified.timestamp()
            latest[upload_id] = max(latest.get(upload_id, 0.0), modified)
            keys.setdefault(upload_id, []).append(item.key)
        removed = 0
        for upload_id, modified in latest.items():
            if modified < older_than:
                state = f"{self.root}{upload_id}/{STATE}"
                await self.objects.delete_keys(sorted(keys[upload_id], key=lambda k: k != state))
                removed += 1
        return removed + await self._abort_multipart(older_than, blob_root)

    async def _abort_multipart(self, older_than: float, prefix: str) -> int:
        objects, client, removed = self.objects, self.objects.client, 0
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            page = await objects.call(
                client.list_multipart_uploads, prefix, key_marker, upload_marker
            )
            for item in page.items:
                if item.initiated.timestamp() < older_than:
                    with contextlib.suppress(S3Error):
                        await objects.call(client.abort_multipart_upload, item.key, item.upload_id)
                        removed += 1
            if page.next_token is None and page.next_upload_id is None:
                return removed
            key_marker, upload_marker = page.next_token, page.next_upload_id
