"""A background loop stops even when its body swallows a cancellation, as CPython 3.11's
`asyncio.wait_for` does when the cancellation and the awaited result arrive together (the task
runner then never stopped: a shutdown, or a test, hung)."""

from __future__ import annotations

import asyncio

from cargobay.jobs.loop import BackgroundLoop


class Swallower(BackgroundLoop):
    """Swallows the first cancellation, then loops on."""

    def __init__(self) -> None:
        self.swallowed = 0

    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1


def test_stop_ends_a_loop_that_swallowed_a_cancellation() -> None:
    async def scenario() -> None:
        loop = Swallower()
        loop.start()
        await asyncio.sleep(0.05)
        stopping = asyncio.ensure_future(loop.stop())
        done, _ = await asyncio.wait({stopping}, timeout=30)  # never cancels `stop` itself
        assert done, "stop() hung on a loop that swallowed its cancellation"
        assert loop.swallowed == 1 and loop._task is None

    asyncio.run(scenario())
