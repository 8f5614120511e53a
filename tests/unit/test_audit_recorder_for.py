"""`audit.record.recorder_for` hands back the same recorder for a database however it is
asked (its one-entry shortcut beside the weak dictionary), a new one after `close_for`, and
never another database's."""

from __future__ import annotations

import asyncio
import gc

from cargobay.audit import record


class _Db:
    """Stands in for a `Database`: the recorder only keeps it (nothing is buffered here)."""


def test_one_recorder_per_database_and_a_new_one_after_close() -> None:
    first, second = _Db(), _Db()
    a = record.recorder_for(first)  # type: ignore[arg-type]
    assert record.recorder_for(first) is a  # the shortcut
    b = record.recorder_for(second)  # type: ignore[arg-type]
    assert b is not a and b.db is second
    assert record.recorder_for(first) is a  # the dictionary, after the shortcut moved on
    assert record.recorder_for(second) is b
    asyncio.run(record.close_for(first))  # type: ignore[arg-type]
    again = record.recorder_for(first)  # type: ignore[arg-type]
    assert again is not a and again.db is first
    asyncio.run(record.close_for(first))  # type: ignore[arg-type]
    asyncio.run(record.close_for(second))  # type: ignore[arg-type]


def test_a_new_database_after_the_last_one_is_dropped_gets_its_own() -> None:
    db = _Db()
    old = record.recorder_for(db)  # type: ignore[arg-type]
    del db
    gc.collect()
    other = _Db()
    fresh = record.recorder_for(other)  # type: ignore[arg-type]
    assert fresh is not old and fresh.db is other
    asyncio.run(record.close_for(other))  # type: ignore[arg-type]


def test_buffer_is_record_for_a_buffering_recorder() -> None:
    async def run() -> list[object]:
        recorder = record.AuditRecorder(_Db(), flush_ms=60_000)  # type: ignore[arg-type]
        event = object()
        recorder.buffer(event)  # type: ignore[arg-type]
        await recorder.record(event)  # type: ignore[arg-type]
        held = list(recorder._buffer)
        recorder._buffer.clear()  # nothing to write: a stand-in database
        if recorder._timer is not None:
            recorder._timer.cancel()
        return held

    held = asyncio.run(run())
    assert len(held) == 2 and held[0] is held[1]
