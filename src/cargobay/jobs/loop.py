"""The life of a serving process's background loop (the scheduler, the task runner, the webhook
deliverer): started once beside the server, cancelled and awaited on shutdown."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundLoop:
    """`start` runs the subclass's `_loop` as a task; `stop` cancels it and waits for it to
    end (a subclass extends `stop` with what it must close after)."""

    _task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            # CPython 3.11's `asyncio.wait_for` returns the inner result instead of raising
            # when the cancellation and that result arrive together, and the loop goes on:
            # the cancellation is sent again until the task ends.
            while not (await asyncio.wait({task}, timeout=1.0))[0]:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._task = None
