"""A worker told to stop while it is still starting stops at once: the fork inherits the
supervisor's SIGTERM handler, which only notes the signal, so without its own a worker would
run on until the supervisor's SIGKILL 15 seconds later (and every `cargobay serve` stopped
right after it started would take that long)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

import cargobay.worker
from cargobay import server
from cargobay.config import Settings


def test_a_worker_sigtermed_while_starting_exits_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    context = multiprocessing.get_context("fork")
    starting = context.Event()

    def still_starting(
        settings: Settings, reuse_port: bool, slot: int, shared: object = None
    ) -> None:
        starting.set()
        time.sleep(120)  # the imports, the database pool, ...: longer than the test waits

    monkeypatch.setattr(cargobay.worker, "worker_main", still_starting)
    noted: list[int] = []
    supervisors = signal.signal(signal.SIGTERM, lambda signum, _frame: noted.append(signum))
    try:
        worker = context.Process(target=server._worker, args=(Settings(), True, 0), daemon=True)
        worker.start()  # forked with the supervisor-like handler above
    finally:
        signal.signal(signal.SIGTERM, supervisors)
    try:
        assert starting.wait(60)
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(60)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        if worker.is_alive():
            worker.kill()
            worker.join()
