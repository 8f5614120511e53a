"""The CPU time of every event-loop callback in a running worker, for `benchmarks.tail_latency
--probe`: a histogram, and the tasks whose single turn held the loop 2 ms or more.

CPU time (`time.thread_time`), not wall time: on a shared machine a turn's wall time is mostly
the other processes', its CPU time is what the worker itself spent before letting the requests
waiting on it go on. The harness copies this file as `sitecustomize.py` into a directory put
first on the served process's PYTHONPATH; `install()` then runs in every process of the tree
and patches `asyncio.Handle._run`; SIGUSR2 writes the figures to
`$CARGOBAY_LOOP_PROBE_DIR/<pid>.json`.
"""

from __future__ import annotations

import asyncio.events
import collections
import json
import os
import signal
import time
from typing import Any

BUCKETS_MS = (0.5, 1.0, 2.0, 5.0, 10.0)  # upper bounds; beyond the last: "10+"
STALL_MS = 2.0


def _place(handle: Any) -> str:
    """The coroutine a task step runs (a task's step is what a handle's callback is bound to)."""
    task = getattr(handle._callback, "__self__", None)
    get_coro = getattr(task, "get_coro", None)
    if get_coro is None:
        return repr(handle._callback)[:80]
    coro = get_coro()
    return getattr(coro, "__qualname__", type(coro).__name__)


def install() -> None:
    out = os.environ.get("CARGOBAY_LOOP_PROBE_DIR")
    if not out:
        return
    original = asyncio.events.Handle._run
    histogram: collections.Counter[str] = collections.Counter()
    stalls: collections.Counter[str] = collections.Counter()
    longest: list[tuple[float, str]] = []

    def _run(self: Any) -> None:
        start = time.thread_time()
        try:
            original(self)
        finally:
            ms = (time.thread_time() - start) * 1000
            bucket = next((f"<{b:g}" for b in BUCKETS_MS if ms < b), "10+")
            histogram[bucket] += 1
            if ms >= STALL_MS:
                place = _place(self)
                stalls[place] += 1
                longest.append((round(ms, 1), place))
                longest.sort(reverse=True)
                del longest[10:]

    def dump(_signum: int, _frame: Any) -> None:
        figures = {"histogram": histogram, "stalls": stalls, "longest": longest}
        with open(os.path.join(out, f"{os.getpid()}.json"), "w") as fh:
            json.dump(figures, fh)

    asyncio.events.Handle._run = _run  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR2, dump)


install()
