"""Waiting for work handed to a thread, even when the task that handed it over is cancelled.

A coroutine that gives a buffer, a file descriptor or a database connection to a thread must
not release it (or let another request reuse it) while the thread may still be using it, and
cancelling the coroutine does not stop the thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
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
