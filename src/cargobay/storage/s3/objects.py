"""Asynchronous object calls on one bucket and prefix: the S3 client's blocking calls run in
the store's threads, and its "not found" errors become FileNotFoundError (or None) for the
layers above."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from cargobay.storage.s3.client import ObjectInfo, S3Client
from cargobay.storage.s3.config import CONNECTIONS, MIB, S3Config
from cargobay.storage.s3.transport import NETWORK_ERRORS, S3Error

log = logging.getLogger("cargobay.storage.s3")

READ_BLOCK = MIB
READ_RETRIES = 3  # ranged GETs re-issued when a download stream breaks
CONCURRENCY = 8  # deletes (and UploadPartCopy calls) in flight at once
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}
TAKEN = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}
FAILURES = (S3Error, *NETWORK_ERRORS)  # what an S3 call raises when it fails


def missing(exc: S3Error) -> bool:
    return exc.code in _NOT_FOUND or exc.status == 404


class Objects:
    """The objects of one store: keys are relative to the configured prefix."""

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self.bucket = config.bucket
        self.prefix = f"{config.prefix}/" if config.prefix else ""
        self.client = S3Client(config, CONNECTIONS)
        self._executor = ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="cargobay-s3")

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(method, *args, **kwargs))

    async def put(
        self, key: str, body: bytes | list[bytes], *, if_none_match: bool = False
    ) -> None:
        """Write an object; a list body is sent piece by piece (never joined)."""
        await self.call(self.client.put_object, key, body, if_none_match=if_none_match)

    async def size(self, key: str) -> int | None:
        """An object's size, or None when there is none."""
        try:
            return int(await self.call(self.client.head_object, key))
        except S3Error as exc:
            if missing(exc):
                return None
            raise

    async def get_bytes(self, key: str) -> bytes:
        """A small object's whole body; FileNotFoundError when it does not exist."""
        try:
            return bytes(await self.call(self.client.get_bytes, key))
        except S3Error as exc:
            if missing(exc):
                raise FileNotFoundError(key) from None
            raise

    async def delete(self, key: str) -> None:
        await self.call(self.client.delete_object, key)

    async def delete_keys(self, keys: list[str]) -> None:
        """Delete objects, a few at a time; a failure is logged (expiry sweeps up later)."""
        semaphore = asyncio.Semaphore(CONCURRENCY)

        async def one(key: str) -> None:
            async with semaphore:
                try:
                    await self.delete(key)
                except FAILURES as exc:
                    log.warning("could not delete s3://%s/%s: %s", self.bucket, key, exc)

        await asyncio.gather(*(one(k) for k in keys))

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        token: str | None = None
        while True:
            page = await self.call(self.client.list_objects, prefix, token)
            for item in page.items:
                yield item
            token = page.next_token
            if token is None:
                return

    async def stream(self, key: str, start: int, end: int | None) -> AsyncIterator[bytes]:
        """Bytes [start, end) of an object with ranged GETs, resuming a broken stream."""
        position, failures = start, 0
        while end is None or position < end:
            byte_range = None
            if position or end is not None:
                # An open range on an empty object is a 416, so ask for a range only when needed.
                byte_range = f"bytes={position}-{'' if end is None else end - 1}"
            try:
                body = await self.call(self.client.get_object, key, byte_range)
            except S3Error as exc:
                if missing(exc):
                    raise FileNotFoundError(key) from None
                if exc.code == "InvalidRange":
                    return  # the object ends at or before `position`: yield what exists
                raise
            try:
                while end is None or position < end:
                    size = READ_BLOCK if end is None else min(READ_BLOCK, end - position)
                    data = await self.call(body.read, size)
                    if not data:
                        break
                    position += len(data)
                    failures = 0
                    yield data
                if end is None or position >= end:
                    return
                error: Exception = OSError(f"s3://{self.bucket}/{key} ended at byte {position}")
            except NETWORK_ERRORS as exc:
                error = exc
            finally:
                body.close()
            failures += 1
            if failures > READ_RETRIES:
                raise error
            log.warning("re-reading s3://%s/%s from %d: %s", self.bucket, key, position, error)

    async def read_all(self, key: str, length: int) -> bytes:
        return b"".join([chunk async for chunk in self.stream(key, 0, length)])

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.client.close()
