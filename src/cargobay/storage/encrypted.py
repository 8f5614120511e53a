"""Envelope encryption of blobs at rest under a KMS key, over any BlobStore.

Each (digest, KMS key) pair is stored once: a fresh data key (GenerateDataKey, AES_256) seals
the blob's bytes with the segmented AEAD of `crypto.stream`, and the data key, wrapped by the
KMS key, travels in the stream's header. Keeping the wrapped key *in* the stored object rather
than in a metadata row means the bytes and their key are committed (and deleted, and copied
between stores) together by the one atomic operation every store already has, on files and S3
alike, with no schema change; a Range read pays one small extra read for the header.

The wrapped key's encryption context names the blob's digest, so a header moved onto another
blob does not open, and the stream binds its header into every segment. The stored object sits
at a digest-shaped address derived from (digest, key id), so stores place it as any blob and
the same layer under two keys is two objects; it is not content-addressed by its own bytes.

Reads check the key first: a disabled, pending-deletion or deleted key raises KeyUnavailable
naming the state before any byte is returned; tampered bytes raise BlobCorrupt, and no
unauthenticated byte is ever yielded (a failure mid-range ends the stream with the error).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, TypeVar

from cargobay.crypto import stream
from cargobay.kms.errors import (
    DisabledException,
    InvalidCiphertextException,
    KMSInvalidStateException,
    NotFoundException,
)
from cargobay.kms.model import ENABLED, KeyRecord
from cargobay.kms.service import KmsService
from cargobay.storage.base import BlobStore
from cargobay.storage.decrypting import LocalRange, read_local, read_store

_ADDRESS_LABEL = b"cargobay-encrypted-blob/1\x00"
_HEADER_PROBE = 512
# Ciphertext handed to the store per block, and plaintext encrypted per thread hand-off.
BLOCK_BYTES = 1024 * 1024


class KeyUnavailable(Exception):
    """The blob's KMS key cannot be used: `state` is its KeyState (Disabled,
    PendingDeletion) or "Deleted" once its material is destroyed."""

    def __init__(self, key_arn: str, state: str) -> None:
        super().__init__(f"KMS key {key_arn} is {state}: the blob cannot be read")
        self.key_arn = key_arn
        self.state = state


class DigestMismatch(ValueError):
    """The plaintext written does not hash to the digest it was written under."""


class BlobCorrupt(Exception):
    """The stored bytes are not what was written (tampered, truncated, swapped)."""


def stored_address(digest: str, key_id: str) -> str:
    """Where the copy of `digest` under KMS key `key_id` is stored (a sha256-shaped name)."""
    name = hashlib.sha256(_ADDRESS_LABEL + digest.encode() + b"\x00" + key_id.encode())
    return "sha256:" + name.hexdigest()


def _context(digest: str) -> dict[str, str]:
    return {"cargobay:blob-digest": digest}


def upload_context(upload_id: str) -> dict[str, str]:
    """The encryption context of a chunked upload's data key (`storage.staging`)."""
    return {"cargobay:upload-id": upload_id}


def staged_key_ref(upload_id: str, wrapped: bytes) -> bytes:
    """A version-2 header's key reference: the upload id its data key is bound to, and the
    wrapped key (u8 length | upload id | wrapped key)."""
    owner = upload_id.encode()
    return bytes((len(owner),)) + owner + wrapped


def parse_staged_key_ref(ref: bytes) -> tuple[str, bytes]:
    if not ref or len(ref) < 1 + ref[0]:
        raise ValueError("key reference too short")
    return ref[1 : 1 + ref[0]].decode("ascii"), bytes(ref[1 + ref[0] :])


class EncryptedBlobs:
    """Blobs under KMS keys on top of a BlobStore. `key_id` arguments are key ids (UUIDs) as
    `KmsService.key` resolves them; `account_id` is the account owning the key."""

    def __init__(
        self,
        store: BlobStore,
        kms: KmsService,
        *,
        segment_size: int = stream.DEFAULT_SEGMENT_SIZE,
    ) -> None:
        self.store = store
        self.kms = kms
        self.segment_size = segment_size

    # ---------------------------------------------------------------- writing

    async def write(
        self,
        account_id: str,
        key_ref: str,
        digest: str,
        chunks: AsyncIterable[bytes],
        *,
        verify: bool = True,
    ) -> KeyRecord:
        """Store a plaintext stream under a KMS key (id, ARN or alias) unless that copy exists.
        With `verify`, the plaintext must hash to `digest` or nothing is committed. Returns
        the key, whose `id` names this copy."""
        key = await self.kms.key(account_id, key_ref)
        if key.state != ENABLED:
            raise KeyUnavailable(key.arn, key.state)
        address = stored_address(digest, key.id)
        if await self.store.stat(address) is not None:
            return key  # deduplicated per key
        data_key = await self.kms.generate_data_key(
            key.account_id, key.id, key_spec="AES_256", encryption_context=_context(digest)
        )
        encryptor = stream.StreamEncryptor(
            data_key["Plaintext"], data_key["CiphertextBlob"], self.segment_size
        )
        algorithm, _, expected = digest.partition(":")
        hasher = hashlib.new(algorithm) if verify else None

        def seal(pending: list[bytes]) -> list[bytes]:
            out: list[bytes] = []
            for piece in pending:
                if hasher is not None:
                    hasher.update(piece)
                out += encryptor.update(piece)
            return out

        async def blocks() -> AsyncIterator[list[bytes]]:
            yield [encryptor.header]
            pending: list[bytes] = []
            size = 0
            # One block seals in a thread while the loop receives the next and the store
            # writes the previous one.
            sealing: asyncio.Future[list[bytes]] | None = None
            async for chunk in chunks:
                pending.append(chunk)
                size += len(chunk)
                if size >= BLOCK_BYTES:
                    done = None if sealing is None else await sealing
                    sealing = _in_thread(seal, pending)
                    pending, size = [], 0
                    if done:
                        yield done
            if sealing is not None:
                yield await sealing
            tail = await asyncio.to_thread(seal, pending)
            if hasher is not None and hasher.hexdigest() != expected:
                raise DigestMismatch(f"the plaintext does not match {digest}")
            yield [*tail, encryptor.finalize()]

        upload_id = f"enc-{uuid.uuid4().hex}"
        await self.store.upload_create(upload_id)
        try:
            # A private upload id nobody else knows: no lease is needed to write it.
            await self.store.upload_append(upload_id, 0, blocks())
            await self.store.upload_commit(upload_id, address)
        except BaseException:
            await self.store.upload_delete(upload_id)
            raise
        return key

    async def write_upload(
        self, account_id: str, key_ref: str, digest: str, upload_id: str, size: int
    ) -> KeyRecord:
        """Encrypt a finished (plaintext, already verified) upload of the inner store into
        its encrypted copy, then drop the upload."""
        key = await self.write(
            account_id, key_ref, digest, self.store.upload_read(upload_id, size), verify=False
        )
        await self.store.upload_delete(upload_id)
        return key

    async def copy(
        self, account_id: str, digest: str, from_key_id: str, to_key_ref: str
    ) -> KeyRecord:
        """Re-encrypt a blob under another key (a cross-repository mount between keys)."""
        return await self.write(
            account_id, to_key_ref, digest, self.read(digest, from_key_id), verify=True
        )

    # ---------------------------------------------------------------- reading

    async def _header(self, address: str, stored: int) -> bytes:
        probe = await self._read_all(address, 0, min(stored, _HEADER_PROBE))
        length = stream.header_length(probe)
        if length > len(probe):
            probe = await self._read_all(address, 0, min(stored, length))
        return probe[:length]

    async def _read_all(self, address: str, start: int, end: int) -> bytes:
        return b"".join([chunk async for chunk in self.store.read(address, start, end)])

    async def _data_key(
        self, digest: str, key_id: str, wrapped: bytes, context: dict[str, str] | None = None
    ) -> bytes:
        try:
            key = await self.kms.key_for_ciphertext(wrapped)
        except NotFoundException:
            raise KeyUnavailable(f"key/{key_id}", "Deleted") from None
        except InvalidCiphertextException:
            raise BlobCorrupt(f"the data key of {digest} is damaged") from None
        if key.id != key_id:
            raise BlobCorrupt(f"the stored copy of {digest} is not under key {key_id}")
        if key.state != ENABLED:
            raise KeyUnavailable(key.arn, key.state)
        try:
            out = await self.kms.decrypt(
                key.account_id, wrapped, encryption_context=context or _context(digest)
            )
        except (DisabledException, KMSInvalidStateException):
            current = await self.kms.key_for_ciphertext(wrapped)
            raise KeyUnavailable(current.arn, current.state) from None
        except InvalidCiphertextException:
            raise BlobCorrupt(f"the data key of {digest} does not belong to it") from None
        return out["Plaintext"]

    async def open(
        self, digest: str, key_id: str, expected_size: int | None = None
    ) -> stream.StreamDecryptor | None:
        """The decryptor of a stored copy (its key checked), or None if there is no copy.
        With `expected_size` (the blob's size as the metadata records it), a copy cut at a
        segment boundary is refused even by reads that never touch its end."""
        address = stored_address(digest, key_id)
        stored = await self.store.stat(address)
        if stored is None:
            return None
        try:
            header_bytes = await self._header(address, stored)
            header = stream.parse_header(header_bytes)
            if header.version == stream.VERSION:
                data_key = await self._data_key(digest, key_id, header.key_ref)
                decryptor = stream.StreamDecryptor(data_key, header_bytes, stored)
            else:
                decryptor = await self._open_staged(address, digest, key_id, header_bytes)
        except (stream.StreamError, ValueError) as exc:
            raise BlobCorrupt(f"the stored copy of {digest}: {exc}") from None
        if expected_size is not None and decryptor.plaintext_size != expected_size:
            raise BlobCorrupt(
                f"the stored copy of {digest} holds {decryptor.plaintext_size} bytes, "
                f"not {expected_size}"
            )
        return decryptor

    async def _open_staged(
        self, address: str, digest: str, key_id: str, header_bytes: bytes
    ) -> stream.StreamDecryptor:
        """A copy committed from a chunked upload (version 2): its data key is bound to the
        upload, and its final segment to the digest, so that segment is checked now: a copy
        moved to another digest's address fails even for a Range that never touches it."""
        header = stream.parse_header(header_bytes)
        upload_id, wrapped = parse_staged_key_ref(header.key_ref)
        data_key = await self._data_key(digest, key_id, wrapped, upload_context(upload_id))
        stored = await self.store.stat(address) or 0
        decryptor = stream.StreamDecryptor(
            data_key, header_bytes, stored, final_aad=digest.encode()
        )
        last = stream.segment_offset(
            decryptor.last_segment, decryptor.segment_size, header.size, decryptor.overhead
        )
        sealed = await self._read_all(address, last, stored)
        await asyncio.to_thread(decryptor.open_segment, decryptor.last_segment, sealed)
        return decryptor

    async def stat(self, digest: str, key_id: str) -> int | None:
        """The plaintext size of the copy under `key_id` (its header read, its key checked)."""
        decryptor = await self.open(digest, key_id)
        return None if decryptor is None else decryptor.plaintext_size

    async def read(
        self,
        digest: str,
        key_id: str,
        start: int = 0,
        end: int | None = None,
        *,
        expected_size: int | None = None,
    ) -> AsyncIterator[bytes]:
        """Plaintext bytes [start, end) of the copy under `key_id`, reading only the segments
        the range touches. FileNotFoundError if there is no such copy."""
        decryptor = await self.open(digest, key_id, expected_size)
        if decryptor is None:
            raise FileNotFoundError(stored_address(digest, key_id))
        plan = decryptor.plan(start, end)
        reader = stream.RangeReader(decryptor, plan)
        address = stored_address(digest, key_id)
        path = self.store.local_path(address)
        try:
            # Decryption runs in a thread, one batch at a time, while the loop sends the
            # batch before it: the event loop stays free, and a second core does the AES.
            if path is not None:
                pieces = read_local(path, reader, plan, decryptor.segment_size)
            else:
                pieces = read_store(
                    self.store.read(address, plan.cipher_start, plan.cipher_end), reader
                )
            async for piece in pieces:
                yield piece
            for piece in reader.finish():
                yield piece
        except stream.StreamError as exc:
            raise BlobCorrupt(f"the stored copy of {digest}: {exc}") from None

    async def local_range(
        self, digest: str, key_id: str, start: int, end: int, expected_size: int
    ) -> LocalRange | None:
        """Plaintext [start, end) of the copy under `key_id` as a `LocalRange` (its key checked
        now), for a sender that decrypts in its own thread; None when the store has no local
        files. FileNotFoundError if there is no such copy."""
        address = stored_address(digest, key_id)
        path = self.store.local_path(address)
        if path is None:
            return None
        decryptor = await self.open(digest, key_id, expected_size)
        if decryptor is None:
            raise FileNotFoundError(address)
        return LocalRange(digest, path, decryptor, decryptor.plan(start, end))

    async def delete(self, digest: str, key_id: str) -> None:
        await self.store.delete(stored_address(digest, key_id))

    async def exists(self, digest: str, key_id: str) -> bool:
        return await self.store.stat(stored_address(digest, key_id)) is not None


T = TypeVar("T")


def _in_thread(work: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Start `work` in the default executor now (not when awaited)."""
    return asyncio.get_running_loop().run_in_executor(None, work, *args)
