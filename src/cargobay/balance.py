"""Spread connections evenly over the workers: one listening socket, made by the supervisor and
inherited by every worker, and a worker takes the next connection only while it holds no more
connections than the least busy worker.

SO_REUSEPORT (each worker its own socket, the kernel hashing each connection to one of them)
splits connections at random: wrk's 32 connections over 2 workers came out 20/12 or 22/10 in
half of the trials (the busier worker's share averaged 19.4 of 32), and the connections of the
busier worker wait longer for their turn of its loop, which makes the tail. Sharing one socket
alone is worse: asyncio's accept loop takes every connection queued when it wakes (32/0 in 4
trials of 10). The supervisor cannot count for the workers, so each worker publishes its open
connections in a slot of a shared array (`Counts`), and a worker that holds more than another
stops watching the socket until it no longer does (a few milliseconds' recheck while it waits;
the least busy worker always watches, so no connection waits for a busy one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any

from cargobay.sharedport import Counts

log = logging.getLogger("cargobay.balance")

RECHECK_SECONDS = 0.005  # while a worker holds more connections than another


class _Listening:
    """What aiohttp's site expects of an asyncio server: its sockets, and `close()`."""

    def __init__(self, acceptor: Acceptor) -> None:
        self._acceptor = acceptor

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return (self._acceptor.sock,)

    def close(self) -> None:
        self._acceptor.close()


class Acceptor:
    """Accepts from the shared socket, one connection a turn, while this worker is the least
    busy; hands each to `factory`'s protocol as asyncio's own server would."""

    def __init__(
        self,
        sock: socket.socket,
        counts: Counts,
        slot: int,
        factory: Callable[[], asyncio.Protocol],
        open_connections: Callable[[], int],
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.sock = sock
        self._counts = counts
        self._slot = slot
        self._factory = factory
        self._open = open_connections
        self._ssl = ssl_context
        self._loop = asyncio.get_running_loop()
        self._watching = False
        self._recheck: asyncio.TimerHandle | None = None
        self._closed = False
        self._starting: set[asyncio.Task[Any]] = set()

    def start(self) -> _Listening:
        self.published()
        self._watch()
        return _Listening(self)

    def published(self) -> None:
        """Publish this worker's connection count (after a connection opens or closes)."""
        self._counts.set(self._slot, self._open() + len(self._starting))

    def _watch(self) -> None:
        if not self._watching and not self._closed:
            self._loop.add_reader(self.sock.fileno(), self._readable)
            self._watching = True

    def _unwatch(self) -> None:
        if self._watching:
            self._loop.remove_reader(self.sock.fileno())
            self._watching = False

    def _readable(self) -> None:
        if not self._counts.mine_is_least(self._slot):
            self._unwatch()  # another worker is less busy: it takes this connection
            if self._recheck is None:
                self._recheck = self._loop.call_later(RECHECK_SECONDS, self._rechecked)
            return
        try:
            conn, _address = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client left
        except OSError as exc:  # out of file descriptors, say: as asyncio's server does
            log.error("accepting a connection failed: %s", exc)
            return
        conn.setblocking(False)
        task = self._loop.create_task(self._connect(conn))
        self._starting.add(task)
        self.published()

    def _rechecked(self) -> None:
        self._recheck = None
        if self._closed:
            return
        if self._counts.mine_is_least(self._slot):
            self._watch()
        else:
            self._recheck = self._loop.call_later(RECHECK_SECONDS, self._rechecked)

    async def _connect(self, conn: socket.socket) -> None:
        task = asyncio.current_task()
        try:
            await self._loop.connect_accepted_socket(self._factory, conn, ssl=self._ssl)
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            log.info("a connection failed before its first request: %s", exc)
            conn.close()
        finally:
            self._starting.discard(task)  # type: ignore[arg-type]
            self.published()

    def close(self) -> None:
        """Stop accepting (the socket stays open: the supervisor and other workers own it)."""
        self._closed = True
        self._unwatch()
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        for task in self._starting:
            task.cancel()
        with contextlib.suppress(Exception):
            self._counts.vacate(self._slot)  # a stopping worker attracts no connection
