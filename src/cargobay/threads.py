"""Waiting for work handed to a thread, even when the task that handed it over is cancelled.

A coroutine that gives a buffer, a file descriptor or a database connection to a thread must
not release it (or let another request reuse it) while the thread may still be using it, and
cancelling the coroutine does not stop the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
from typing import Any


async def settle(job: concurrent.futures.Future[Any] | None) -> bool:
    """Wait until a thread job has finished, through any cancellation of the calling task;
    True if a cancellation arrived meanwhile (the caller re-raises it once it has cleaned up)."""
    if job is None or job.done():
        return False
    waiter = asyncio.wrap_future(job)
    cancelled = False
    while True:
        try:
            await asyncio.shield(waiter)
            return cancelled
        except asyncio.CancelledError:
            # This task was asked to stop (whether or not the job finished in the same turn):
            # remember it for the caller, and keep waiting while the job still runs.
            cancelled = True
            if waiter.done():
                return cancelled
        except BaseException:
            return cancelled  # the job failed: it has finished, which is all that matters


class ProcessPool:
    """A thread pool made on first use in each process: one inherited across a fork has no
    threads, and its queue would never be served."""

    def __init__(self, max_workers: int, name: str) -> None:
        self._max_workers = max_workers
        self._name = name
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pid = 0

    def get(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._pool is None or self._pid != os.getpid():
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix=self._name
            )
            self._pid = os.getpid()
        return self._pool

    def shutdown(self) -> None:
        """Stop this process's threads once their jobs are done (not a parent's pool)."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.shutdown(wait=True)
        self._pool = None
