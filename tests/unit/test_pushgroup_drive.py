"""`pushgroup._drive` runs a push's coroutine in its request's context inside the batch's
task: what finishes on the loop finishes at once, what waits for a future (a thread's
answer, a sleep) is waited for, errors and results come back as a task's would."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from cargobay.registry.pushgroup import _drive

_REQUEST: contextvars.ContextVar[str] = contextvars.ContextVar("request", default="batch")


async def _body(waits: bool) -> tuple[str, int]:
    seen = _REQUEST.get()
    if waits:
        await asyncio.sleep(0)  # a bare yield
        await asyncio.sleep(0.01)  # a future
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sum, [1, 2])  # a thread's answer
    _REQUEST.set("changed")  # in the request's context copy only
    return seen, 3


def _request_context(name: str) -> contextvars.Context:
    token = _REQUEST.set(name)
    try:
        return contextvars.copy_context()
    finally:
        _REQUEST.reset(token)


@pytest.mark.parametrize("waits", [False, True])
def test_a_body_runs_in_its_requests_context(waits: bool) -> None:
    async def main() -> None:
        ctx = _request_context("req-1")
        assert await _drive(ctx, _body(waits)) == ("req-1", 3)
        assert ctx[_REQUEST] == "changed"
        assert _REQUEST.get() == "batch"  # the batch's own context is untouched

    asyncio.run(main())


def test_a_body_that_finishes_on_the_loop_never_yields_to_it() -> None:
    async def main() -> None:
        ran: list[str] = []
        asyncio.get_running_loop().call_soon(ran.append, "other work")
        await _drive(_request_context("req"), _body(False))
        assert ran == []  # no trip through the loop: nothing else ran meanwhile

    asyncio.run(main())


def test_errors_come_back_after_a_wait() -> None:
    async def failing() -> None:
        await asyncio.sleep(0.001)
        raise LookupError("missing layer")

    async def main() -> None:
        with pytest.raises(LookupError, match="missing layer"):
            await _drive(_request_context("req"), failing())

    asyncio.run(main())


def test_a_future_failing_is_raised_inside_the_body() -> None:
    async def awaits_failure() -> str:
        future = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.001, future.set_exception, OSError("io"))
        try:
            await future
        except OSError as exc:
            return f"caught {exc}"
        return "not raised"

    async def main() -> None:
        assert await _drive(_request_context("req"), awaits_failure()) == "caught io"

    asyncio.run(main())
