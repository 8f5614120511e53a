"""Blobs in an S3-compatible object store (AWS S3, MinIO, Ceph RGW).

Selected by a URL::

    s3://BUCKET[/PREFIX]?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
        &sse=AES256|aws:kms&kms_key_id=KEY&part_size=8388608
        &access_key_id=ID&secret_access_key=SECRET

Every parameter is optional. Credentials come from the standard AWS chain (environment, shared
config and credentials files, instance roles) unless `access_key_id`/`secret_access_key` are
given. `sse` adds server-side encryption headers (SSE-S3 `AES256`, or SSE-KMS `aws:kms` with an
optional `kms_key_id`) to every write: pieces, state, locks, copies and the blobs themselves.

Layout under the prefix:

    blobs/<algorithm>/<2 hex>/<hex>    committed blobs, complete or absent, never partial
    _uploads/<id>/state.json           the upload's state: its pieces, in order, with sizes
    _uploads/<id>/<token>-<n>          pieces: immutable objects holding the upload's bytes
    _uploads/<id>/lock                 present while a request holds the upload (upload_lock),
                                       naming the process that holds it

Uploads. The bytes of an upload are a list of immutable piece objects. A PATCH buffers what it
receives and writes a piece whenever `part_size` bytes are buffered, so a node holds about one
part per upload in memory, never a blob. The remainder at the end of a request becomes a short
last piece (the tail); the next append reads that tail back (it is below 5 MiB, or a part cut by
a truncating append) and merges it, so every piece but the last is at least 5 MiB, the S3
minimum for a non-last multipart part. `state.json` is written after the pieces it names and is
the only mutable object, so every request sees either the old or the new upload, on any node:
a PATCH that lands on another node, or after a restart, reads the state and carries on, and
`upload_read` (re-hashing after such a hop) reads the pieces back with ranged GETs.

Commit. The object's key is fixed when a multipart upload is created, and the digest is only
known when the client finishes, so no multipart upload can be opened at the blob's address while
the data arrives. Instead, commit assembles the verified pieces server-side, once, straight into
the blob's key: CreateMultipartUpload at the blob key, one UploadPartCopy per piece (the last one
cut to the committed size with CopySourceRange), CompleteMultipartUpload. A one-piece upload is
one CopyObject. No byte passes through the node and no temporary whole-blob object exists; the
blob appears only when the completion succeeds. An existing blob is kept (content-addressed
dedup) and the upload is dropped.

S3 calls used (all standard, so AWS S3, MinIO and Ceph RGW behave alike): HeadBucket,
HeadObject, GetObject (with Range), PutObject (with `If-None-Match: *` for locks and upload
creation), DeleteObject, CopyObject, CreateMultipartUpload, UploadPartCopy (with
CopySourceRange), CompleteMultipartUpload, AbortMultipartUpload, ListObjectsV2,
ListMultipartUploads, and presigned GetObject URLs (SigV4).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cargobay.storage.base import Observer, UploadBusy

log = logging.getLogger("cargobay.storage.s3")

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3's smallest non-last multipart part
MAX_PART = 5 * 1024 * MIB  # S3's largest part and largest CopyObject source
MAX_PARTS = 10_000
DEFAULT_PART_SIZE = 8 * MIB
READ_BLOCK = MIB
CONNECTIONS = 16  # boto3 connection pool and the store's threads
COPY_CONCURRENCY = 8  # UploadPartCopy calls in flight during one commit
READ_RETRIES = 3  # ranged GETs re-issued when a download stream breaks
LOCK_TTL = 120.0  # seconds after the last renewal when a lock counts as abandoned
LOCK_RENEW = 30.0
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
_TAKEN = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}
_SSE = {"AES256", "aws:kms"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    path_style: bool | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)


def parse_url(url: str) -> S3Config:
    """Parse an `s3://` storage URL; ValueError (never echoing secrets) when it is unusable."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("an S3 storage URL looks like s3://bucket/prefix?endpoint=...")
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in params:
            raise ValueError(f"S3 storage URL: parameter {key!r} is given twice")
        params[key] = value
    known = {
        "endpoint",
        "region",
        "path_style",
        "sse",
        "kms_key_id",
        "part_size",
        "access_key_id",
        "secret_access_key",
    }
    if unknown := sorted(set(params) - known):
        raise ValueError(f"S3 storage URL: unknown parameter(s) {', '.join(unknown)}")
    path_style = None
    if "path_style" in params:
        flag = params["path_style"].lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError("S3 storage URL: path_style must be true or false")
        path_style = flag in _TRUE
    sse = params.get("sse") or None
    if sse is not None and sse not in _SSE:
        raise ValueError("S3 storage URL: sse must be AES256 or aws:kms")
    kms_key_id = params.get("kms_key_id") or None
    if kms_key_id and sse != "aws:kms":
        raise ValueError("S3 storage URL: kms_key_id needs sse=aws:kms")
    try:
        part_size = int(params.get("part_size") or DEFAULT_PART_SIZE)
    except ValueError:
        raise ValueError("S3 storage URL: part_size must be a number of bytes") from None
    if not MIN_PART <= part_size <= MAX_PART // 2:
        raise ValueError(f"S3 storage URL: part_size must be {MIN_PART} to {MAX_PART // 2}")
    endpoint = params.get("endpoint") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError("S3 storage URL: endpoint must be an http:// or https:// URL")
    if bool(params.get("access_key_id")) != bool(params.get("secret_access_key")):
        raise ValueError("S3 storage URL: access_key_id and secret_access_key go together")
    return S3Config(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint=endpoint,
        region=params.get("region") or None,
        path_style=path_style,
        sse=sse,
        kms_key_id=kms_key_id,
        part_size=part_size,
        access_key_id=params.get("access_key_id") or None,
        secret_access_key=params.get("secret_access_key") or None,
    )


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _missing(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _code(exc) in _NOT_FOUND or status == 404


# -- who holds an upload lock ---------------------------------------------------------------
# A lock object names its holder: a random owner token, and the process (pid and start time) in
# this machine's boot and pid namespace. Another process of the same machine and namespace can
# then tell a lock whose holder has exited (SIGKILL, OOM kill, a restart) and take it at once;
# a holder elsewhere (another node, another container) can only age out after LOCK_TTL.

_LIVE_LOCKS: set[str] = set()  # owner tokens of the locks this process holds right now


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live process, None if there is none. A
    zombie (killed, not yet reaped by its parent) has exited: it holds nothing any more."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    fields = stat.rpartition(")")[2].split()  # from field 3 (state) on
    if len(fields) < 20 or fields[0] in ("Z", "X", "x"):
        return None
    return fields[19]


def _machine() -> str | None:
    """This boot of this machine and this pid namespace: where a pid means one process."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


def _lock_holder() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "owner": uuid.uuid4().hex,
        "machine": _machine(),
        "pid": pid,
        "start": _process_start(pid),
    }


def _holder_exited(holder: Any) -> bool:
    """True only when a lock's holder is known to be gone: a process of this machine and pid
    namespace that no longer runs (or whose pid now belongs to a newer process), or this
    process when it no longer holds that lock. Anything else (another machine, a lock written
    by an older version) counts as possibly alive."""
    if not isinstance(holder, dict):
        return False
    machine, pid, start = holder.get("machine"), holder.get("pid"), holder.get("start")
    if not machine or machine != _machine() or not isinstance(pid, int) or not start:
        return False
    if pid == os.getpid():
        return holder.get("owner") not in _LIVE_LOCKS
    return _process_start(pid) != start


@dataclass(frozen=True, slots=True)
class _Piece:
    name: str  # key relative to the upload's folder
    size: int


@dataclass(slots=True)
class _State:
    created: float
    pieces: list[_Piece]

    @property
    def size(self) -> int:
        return sum(p.size for p in self.pieces)

    def to_json(self) -> bytes:
        pieces = [[p.name, p.size] for p in self.pieces]
        return json.dumps({"v": 1, "created": self.created, "pieces": pieces}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> _State:
        doc = json.loads(data)
        return cls(float(doc["created"]), [_Piece(str(n), int(s)) for n, s in doc["pieces"]])


class S3Store:
    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        self._prefix = f"{config.prefix}/" if config.prefix else ""
        self._executor = ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="cargobay-s3")
        session = boto3.session.Session(
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            region_name=config.region,
        )
        path_style = config.path_style
        if path_style is None:
            path_style = config.endpoint is not None
        self.client = session.client(
            "s3",
            endpoint_url=config.endpoint,
            region_name=config.region or session.region_name or "us-east-1",
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if path_style else "auto"},
                max_pool_connections=CONNECTIONS,
                retries={"max_attempts": 5, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
                # Only the checksums S3 requires: newer default trailers are not understood by
                # every S3-compatible server.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        self._sse: dict[str, str] = {}
        if config.sse:
            self._sse["ServerSideEncryption"] = config.sse
            if config.kms_key_id:
                self._sse["SSEKMSKeyId"] = config.kms_key_id
        self._held: set[str] = set()  # upload ids this process holds a lock on

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, prefix={self.config.prefix!r})"

    # -- plumbing ------------------------------------------------------------------------

    async def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(method, **kwargs))

    def _blob_key(self, digest: str) -> str:
        algorithm, _, hexpart = digest.partition(":")
        if not (algorithm.isalnum() and hexpart.isalnum()):
            raise ValueError(f"not a digest: {digest!r}")
        return f"{self._prefix}blobs/{algorithm}/{hexpart[:2]}/{hexpart}"

    def _upload_dir(self, upload_id: str) -> str:
        if not upload_id.replace("-", "").isalnum():
            raise ValueError(f"not an upload id: {upload_id!r}")
        return f"{self._prefix}_uploads/{upload_id}/"

    async def _put(self, key: str, body: bytes, **extra: Any) -> None:
        await self._call(
            self.client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType="application/octet-stream",
            **self._sse,
            **extra,
        )

    async def _delete_keys(self, keys: list[str]) -> None:
        """Delete objects, a few at a time; a failure is logged (expiry sweeps up later)."""
        semaphore = asyncio.Semaphore(COPY_CONCURRENCY)

        async def one(key: str) -> None:
            async with semaphore:
                try:
                    await self._call(self.client.delete_object, Bucket=self.bucket, Key=key)
                except (ClientError, BotoCoreError) as exc:
                    log.warning("could not delete s3://%s/%s: %s", self.bucket, key, exc)

        await asyncio.gather(*(one(k) for k in keys))

    async def _list(self, prefix: str) -> AsyncIterator[dict[str, Any]]:
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call(self.client.list_objects_v2, **kwargs)
            for item in page.get("Contents", []):
                yield item
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    async def _stream(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of an object with ranged GETs, resuming a broken stream."""
        position, failures = start, 0
        while end is None or position < end:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if position or end is not None:
                # An open range on an empty object is a 416, so ask for a range only when needed.
                kwargs["Range"] = f"bytes={position}-{'' if end is None else end - 1}"
            try:
                response = await self._call(self.client.get_object, **kwargs)
            except ClientError as exc:
                if _missing(exc):
                    raise FileNotFoundError(key) from None
                if _code(exc) == "InvalidRange":
                    return  # the object ends at or before `position`: yield what exists
                raise
            body = response["Body"]
            try:
                while end is None or position < end:
                    size = READ_BLOCK if end is None else min(READ_BLOCK, end - position)
                    data = await self._call(body.read, amt=size)
                    if not data:
                        break
                    position += len(data)
                    failures = 0
                    yield data
                if end is None or position >= end:
                    return
                error: Exception = OSError(f"s3://{self.bucket}/{key} ended at byte {position}")
            except (BotoCoreError, ConnectionError, TimeoutError) as exc:
                error = exc
            finally:
                body.close()
            failures += 1
            if failures > READ_RETRIES:
                raise error
            log.warning("re-reading s3://%s/%s from %d: %s", self.bucket, key, position, error)

    async def _read_all(self, key: str, length: int) -> bytes:
        return b"".join([chunk async for chunk in self._stream(key, 0, length)])

    # -- committed blobs -----------------------------------------------------------------

    async def stat(self, digest: str) -> int | None:
        try:
            head = await self._call(
                self.client.head_object, Bucket=self.bucket, Key=self._blob_key(digest)
            )
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return int(head["ContentLength"])

    def local_path(self, digest: str) -> Path | None:
        return None

    async def read(
        self, digest: str, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        if end is not None and end <= start:
            return
        async for chunk in self._stream(self._blob_key(digest), start, end):
            yield chunk

    async def delete(self, digest: str) -> None:
        await self._call(self.client.delete_object, Bucket=self.bucket, Key=self._blob_key(digest))

    async def download_url(self, digest: str, expires_in: int) -> str | None:
        """A presigned GET for the blob, valid `expires_in` seconds (SigV4 allows 7 days)."""
        return await self._call(
            self.client.generate_presigned_url,
            ClientMethod="get_object",
            Params={"Bucket": self.bucket, "Key": self._blob_key(digest)},
            ExpiresIn=max(1, min(int(expires_in), 7 * 24 * 3600)),
        )

    async def ready(self) -> None:
        await self._call(self.client.head_bucket, Bucket=self.bucket)

    # -- uploads -------------------------------------------------------------------------

    async def _load(self, upload_id: str) -> _State:
        key = self._upload_dir(upload_id) + "state.json"
        try:
            response = await self._call(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(f"upload {upload_id}") from None
            raise
        body = response["Body"]
        try:
            return _State.from_json(await self._call(body.read))
        finally:
            body.close()

    async def _save(self, upload_id: str, state: _State, **extra: Any) -> None:
        await self._put(self._upload_dir(upload_id) + "state.json", state.to_json(), **extra)

    async def upload_create(self, upload_id: str) -> None:
        try:
            await self._save(upload_id, _State(time.time(), []), IfNoneMatch="*")
        except ClientError as exc:
            if _code(exc) in _TAKEN:
                raise FileExistsError(f"upload {upload_id}") from None
            raise

    async def upload_size(self, upload_id: str) -> int | None:
        try:
            return (await self._load(upload_id)).size
        except FileNotFoundError:
            return None

    async def upload_append(
        self,
        upload_id: str,
        offset: int,
        blocks: AsyncIterator[list[bytes]],
        observe: Observer | None = None,
    ) -> int:
        folder = self._upload_dir(upload_id)
        state = await self._load(upload_id)
        if state.size < offset:
            raise FileNotFoundError(f"upload {upload_id} has lost data")
        # Keep whole pieces of full part size that end at or before the offset. The bytes
        # between them and the offset lie in the next piece (a short tail, or a part this
        # append cuts short): those are read back into the buffer and written again.
        kept: list[_Piece] = []
        position = 0
        for piece in state.pieces:
            if position + piece.size > offset or piece.size < MIN_PART:
                break
            kept.append(piece)
            position += piece.size
        reread = state.pieces[len(kept)] if position < offset else None
        token = uuid.uuid4().hex[:16]
        written: list[_Piece] = []
        buffer: list[bytes] = []
        buffered = 0
        loaded = False

        async def load_reread() -> None:
            nonlocal buffered, loaded
            loaded = True
            if reread is not None:
                data = await self._read_all(folder + reread.name, offset - position)
                if len(data) != offset - position:
                    raise FileNotFoundError(f"upload {upload_id} has lost data")
                buffer.insert(0, data)
                buffered += len(data)

        async def flush() -> None:
            nonlocal buffer, buffered
            if len(kept) + len(written) >= MAX_PARTS:
                raise OSError(f"upload {upload_id} exceeds {MAX_PARTS} parts; raise part_size")
            piece = _Piece(f"{token}-{len(written):05d}", buffered)
            await self._put(folder + piece.name, b"".join(buffer))
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
                if observe is not None:
                    pending = asyncio.ensure_future(asyncio.to_thread(observe, block))
                buffer.extend(block)
                buffered += sum(len(b) for b in block)
                if buffered >= self.config.part_size:
                    await flush()
            if pending is not None:
                await pending
            if not loaded:
                if offset == state.size:
                    return offset  # nothing sent, nothing cut: the upload is unchanged
                await load_reread()
            if buffered:
                await flush()
            new = _State(state.created, kept + written)
            await self._save(upload_id, new)
        except BaseException:
            if written:
                await asyncio.shield(self._delete_keys([folder + p.name for p in written]))
            raise
        # The pieces the new state no longer names (a re-read tail, cut parts) are garbage now.
        await self._delete_keys([folder + p.name for p in state.pieces if p not in new.pieces])
        return new.size

    async def upload_read(self, upload_id: str, length: int) -> AsyncIterator[bytes]:
        folder = self._upload_dir(upload_id)
        state = await self._load(upload_id)
        for piece in state.pieces:
            if length <= 0:
                return
            take = min(piece.size, length)
            async for chunk in self._stream(folder + piece.name, 0, take):
                yield chunk
            length -= take

    @contextlib.asynccontextmanager
    async def upload_lock(self, upload_id: str) -> AsyncIterator[None]:
        """Hold an upload alone across processes and nodes: a `lock` object created with
        `If-None-Match: *` and naming its holder, renewed while held, taken over once it is
        LOCK_TTL stale, or at once when its holder was a process of this machine that has
        exited (a crash or a restart: an interrupted upload can be resumed right away)."""
        if upload_id in self._held:
            raise UploadBusy(upload_id)
        key = self._upload_dir(upload_id) + "lock"
        holder = _lock_holder()
        self._held.add(upload_id)
        _LIVE_LOCKS.add(holder["owner"])
        try:
            await self._acquire(key, upload_id, holder)
            stop = asyncio.Event()
            renewal = asyncio.ensure_future(self._renew(key, holder, stop))
            try:
                try:
                    await self._call(
                        self.client.head_object,
                        Bucket=self.bucket,
                        Key=self._upload_dir(upload_id) + "state.json",
                    )
                except ClientError as exc:
                    if _missing(exc):
                        raise FileNotFoundError(f"upload {upload_id}") from None
                    raise
                yield
            finally:
                stop.set()
                with contextlib.suppress(Exception):
                    await renewal
                await self._delete_keys([key])
        finally:
            _LIVE_LOCKS.discard(holder["owner"])
            self._held.discard(upload_id)

    async def _acquire(self, key: str, upload_id: str, holder: dict[str, Any]) -> None:
        body = json.dumps(holder).encode()
        for _ in range(2):
            try:
                await self._put(key, body, IfNoneMatch="*")
                return
            except ClientError as exc:
                if _code(exc) not in _TAKEN:
                    raise
            try:
                found = await self._call(self.client.get_object, Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _missing(exc):
                    continue  # released meanwhile: try again
                raise
            try:
                other = json.loads(await self._call(found["Body"].read))
            except ValueError:
                other = None
            finally:
                found["Body"].close()
            if _holder_exited(other):
                log.warning("taking over the lock of upload %s from an exited process", upload_id)
            else:
                # Age by the server's clock (its Date header), so node clocks do not matter.
                server_now = found["ResponseMetadata"]["HTTPHeaders"].get("date")
                now = parsedate_to_datetime(server_now).timestamp() if server_now else time.time()
                if now - found["LastModified"].timestamp() < LOCK_TTL:
                    raise UploadBusy(upload_id)
                log.warning("taking over the abandoned lock of upload %s", upload_id)
            await self._delete_keys([key])
        raise UploadBusy(upload_id)

    async def _renew(self, key: str, holder: dict[str, Any], stop: asyncio.Event) -> None:
        body = json.dumps(holder).encode()
        while True:
            try:
                await asyncio.wait_for(stop.wait(), LOCK_RENEW)
                return
            except TimeoutError:
                pass
            await self._put(key, body)

    async def upload_commit(self, upload_id: str, digest: str, size: int | None = None) -> None:
        target = self._blob_key(digest)
        if await self.stat(digest) is not None:
            # Content-addressed: the same bytes are already durable there.
            await self.upload_delete(upload_id)
            return
        folder = self._upload_dir(upload_id)
        state = await self._load(upload_id)
        size = state.size if size is None else size
        if size > state.size:
            raise FileNotFoundError(f"upload {upload_id} has lost data")
        # The pieces holding the first `size` bytes; the last one possibly cut short.
        ranges: list[tuple[_Piece, int]] = []
        remaining = size
        for piece in state.pieces:
            if remaining <= 0:
                break
            ranges.append((piece, min(piece.size, remaining)))
            remaining -= piece.size
        if not ranges:
            await self._put(target, b"")
        elif len(ranges) == 1 and ranges[0][1] == ranges[0][0].size:
            await self._call(
                self.client.copy_object,
                Bucket=self.bucket,
                Key=target,
                CopySource={"Bucket": self.bucket, "Key": folder + ranges[0][0].name},
                **self._sse,
            )
        else:
            await self._assemble(target, [(folder + p.name, n, p.size) for p, n in ranges])
        await self.upload_delete(upload_id)

    async def _assemble(self, target: str, sources: list[tuple[str, int, int]]) -> None:
        """One multipart upload at `target` whose parts are server-side copies of `sources`
        (key, bytes to take from its start, its size); visible only once complete."""
        created = await self._call(
            self.client.create_multipart_upload,
            Bucket=self.bucket,
            Key=target,
            ContentType="application/octet-stream",
            **self._sse,
        )
        mpu = created["UploadId"]
        semaphore = asyncio.Semaphore(COPY_CONCURRENCY)

        async def copy(number: int, key: str, take: int, size: int) -> dict[str, Any]:
            kwargs: dict[str, Any] = {}
            if take != size:
                kwargs["CopySourceRange"] = f"bytes=0-{take - 1}"
            async with semaphore:
                result = await self._call(
                    self.client.upload_part_copy,
                    Bucket=self.bucket,
                    Key=target,
                    UploadId=mpu,
                    PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": key},
                    **kwargs,
                )
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        try:
            parts = await asyncio.gather(
                *(copy(i + 1, *source) for i, source in enumerate(sources))
            )
            await self._call(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=target,
                UploadId=mpu,
                MultipartUpload={"Parts": list(parts)},
            )
        except BaseException:
            with contextlib.suppress(ClientError, BotoCoreError):
                await asyncio.shield(
                    self._call(
                        self.client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=target,
                        UploadId=mpu,
                    )
                )
            raise

    async def upload_delete(self, upload_id: str) -> None:
        folder = self._upload_dir(upload_id)
        keys = [item["Key"] async for item in self._list(folder)]
        state = folder + "state.json"
        if state in keys:
            # The state first: from then on the upload is gone for every node.
            await self._call(self.client.delete_object, Bucket=self.bucket, Key=state)
            keys.remove(state)
        await self._delete_keys(keys)

    async def expire_uploads(self, older_than: float) -> int:
        """Remove uploads (their objects) not written since the Unix time `older_than`, and
        abort multipart uploads started before it (commits a crash interrupted). Returns how
        many uploads and multipart uploads were removed."""
        root = f"{self._prefix}_uploads/"
        latest: dict[str, float] = {}
        keys: dict[str, list[str]] = {}
        async for item in self._list(root):
            upload_id = item["Key"][len(root) :].partition("/")[0]
            modified = item["LastModified"].timestamp()
            latest[upload_id] = max(latest.get(upload_id, 0.0), modified)
            keys.setdefault(upload_id, []).append(item["Key"])
        removed = 0
        for upload_id, modified in latest.items():
            if modified < older_than:
                state = f"{root}{upload_id}/state.json"
                ordered = sorted(keys[upload_id], key=lambda k: k != state)
                await self._delete_keys(ordered)
                removed += 1
        marker: dict[str, str] = {}
        while True:
            page = await self._call(
                self.client.list_multipart_uploads,
                Bucket=self.bucket,
                Prefix=f"{self._prefix}blobs/",  # commits open them at blob keys only
                **marker,
            )
            for item in page.get("Uploads", []):
                if item["Initiated"].timestamp() < older_than:
                    with contextlib.suppress(ClientError):
                        await self._call(
                            self.client.abort_multipart_upload,
                            Bucket=self.bucket,
                            Key=item["Key"],
                            UploadId=item["UploadId"],
                        )
                        removed += 1
            if not page.get("IsTruncated"):
                return removed
            marker = {
                "KeyMarker": page.get("NextKeyMarker", ""),
                "UploadIdMarker": page.get("NextUploadIdMarker", ""),
            }

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
