"""Named, expiring leases in the shared database: one holder at a time for any resource (an
upload being written, say), across the workers of a node and across nodes.

A lease is a row of `resource_leases`: the resource's name, its holder, a token naming this one
acquisition, and when it expires. Taking it is one write transaction: insert the row if there
is none, else take it over when it has expired (a holder that crashed on a node that never came
back) or when it is held by an earlier life of this same holder (see below). Both statements are
conditional, so exactly one claimant wins on SQLite and PostgreSQL alike. A held lease is
renewed in the background, so work longer than the lease's lifetime keeps it; releasing it
deletes the row.

Holders. A holder id names one serving process in a way that survives its restart: the node
(host and data directory) and the worker's slot under the supervisor (`node_holder`). Nothing
waits for the leases of a dead process to expire when its replacement is known: a node that
starts drops every lease of its previous run (`release_node`), and a worker that the supervisor
starts in place of a dead one has the dead one's id and takes its leases over. So an upload
interrupted by a crash can be resumed right after the restart. Within one process the leases
it holds are also tracked in memory, so two requests of one worker still exclude each other.
Processes that are no serving worker (command-line tools) get a unique id.

Expiry is judged by each node's clock: clocks must agree to well within `TTL`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import bindparam, or_

from cargobay.metadata import schema
from cargobay.metadata.conn import Conn
from cargobay.metadata.db import Database
from cargobay.metadata.hotwrite import HotWrite
from cargobay.metadata.sql import insert_statement

log = logging.getLogger("cargobay.leases")

TTL = 60.0  # seconds a lease lives after its last renewal
RENEW = 15.0  # how often a held lease is renewed
PURGE_EVERY = 600.0  # how often a process sweeps out leases that expired long ago


_t = schema.resource_leases
_COLUMNS = ("name", "holder", "token", "acquired_at", "expires_at")
# A request that writes an upload claims and releases a lease: statements built once (see
# `metadata.hotwrite`), not per call.
_INSERT = HotWrite(
    lambda dialect: insert_statement(dialect, _t).on_conflict_do_nothing(), names=_COLUMNS
)
_TAKE_OVER = HotWrite.of(
    _t.update()
    .where(
        _t.c.name == bindparam("lease"),
        or_(_t.c.expires_at < bindparam("now"), _t.c.holder == bindparam("me")),
    )
    .values(
        holder=bindparam("me"),
        token=bindparam("new_token"),
        acquired_at=bindparam("now"),
        expires_at=bindparam("until"),
    )
)
_DELETE = HotWrite.of(
    _t.delete().where(_t.c.name == bindparam("lease"), _t.c.token == bindparam("held"))
)


class LeaseBusy(Exception):
    """Another holder has the lease."""


@dataclass(slots=True)
class Lease:
    """One acquisition `hold` gives its block; `released` once the holder deleted its row in a
    transaction of its own that committed (`Leases.release_in`)."""

    name: str
    token: str
    released: bool = False


def node_id(data_dir: Path) -> str:
    """This node: its host and data directory, stable across restarts."""
    directory = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    return f"{socket.gethostname()}/{directory}"


def node_holder(data_dir: Path, slot: int) -> str:
    """The holder id of a serving worker: stable across restarts of the same worker slot of
    the same node, distinct for every other worker and node."""
    return f"{node_id(data_dir)}/w{slot}"


async def release_node(db: Database, node: str) -> int:
    """Drop every lease the workers of `node` hold: called as the node starts, before any of
    its workers runs, since whatever held them died with the node's previous run."""
    t = schema.resource_leases
    async with db.write() as conn:
        result = await conn.execute(
            t.delete().where(t.c.holder.startswith(f"{node}/", autoescape=True))
        )
    return int(result.rowcount or 0)


def process_holder() -> str:
    """A holder id for a one-off process: unique, never taken over by anyone else."""
    return f"{socket.gethostname()}/pid{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Leases:
    """One process's leases on one database, under one holder id."""

    def __init__(
        self, db: Database, holder: str, *, ttl: float = TTL, renew: float = RENEW
    ) -> None:
        self.db = db
        self.holder = holder
        self.ttl = ttl
        self.renew_every = renew
        self._held: set[str] = set()  # names this process holds right now
        self._purged = 0.0

    async def acquire(self, name: str, now: float | None = None) -> str:
        """Take the lease on `name`; return this acquisition's token. LeaseBusy if another
        request (of this process or any other) holds it."""
        if name in self._held:
            raise LeaseBusy(name)
        self._held.add(name)
        try:
            return await self._claim(name, time.time() if now is None else now)
        except BaseException:
            self._held.discard(name)
            raise

    async def _claim(self, name: str, now: float) -> str:
        t = schema.resource_leases
        token = uuid.uuid4().hex
        row = {
            "name": name,
            "holder": self.holder,
            "token": token,
            "acquired_at": now,
            "expires_at": now + self.ttl,
        }
        async with self.db.write() as conn:
            if now - self._purged > PURGE_EVERY:
                self._purged = now
                await conn.execute(t.delete().where(t.c.expires_at < now - self.ttl))
            if await _INSERT.run(conn, row) != 1:
                # Not in self._held, so a row naming this holder is an earlier life's: the
                # process that held it has died and this one replaced it.
                claim = {"lease": name, "me": self.holder, "new_token": token, "now": now}
                if await _TAKE_OVER.run(conn, {**claim, "until": now + self.ttl}) != 1:
                    raise LeaseBusy(name)
                log.info("took over the lease on %s", name)
        return token

    async def renew(self, name: str, token: str, now: float | None = None) -> bool:
        """Extend a held lease; False if it was lost (expired and taken over)."""
        t = schema.resource_leases
        now = time.time() if now is None else now
        async with self.db.write() as conn:
            result = await conn.execute(
                t.update()
                .where(t.c.name == name, t.c.token == token)
                .values(expires_at=now + self.ttl)
            )
        return result.rowcount == 1

    async def release(self, name: str, token: str) -> None:
        try:
            async with self.db.write() as conn:
                await _DELETE.run(conn, {"lease": name, "held": token})
        finally:
            self._held.discard(name)

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Lease]:
        """Hold the lease on `name` for the block, renewed while it runs; LeaseBusy if taken."""
        token = await self.acquire(name)
        lease = Lease(name, token)
        try:
            # The renewing task starts only once the block has outlived one renewal period
            # (a timer costs far less than a task started and cancelled with every request).
            loop = asyncio.get_running_loop()
            renewal: list[asyncio.Task[None]] = []
            timer = loop.call_later(
                self.renew_every, lambda: renewal.append(loop.create_task(self._keep(name, token)))
            )
            try:
                yield lease
            finally:
                timer.cancel()
                for task in renewal:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            if lease.released:  # its row went with the holder's own transaction
                self._held.discard(name)
            else:
                # Released even when the request was cancelled: otherwise the resource stays
                # busy until the lease expires (which is also what happens if the release
                # fails).
                try:
                    await asyncio.shield(self.release(name, token))
                except Exception:
                    log.exception("releasing the lease on %s failed; it will expire", name)

    @staticmethod
    async def release_in(conn: Conn, lease: Lease) -> None:
        """Delete a held lease's row inside the holder's own write transaction; once that
        transaction has committed, the holder sets `lease.released` (the block's end then
        costs no transaction of its own)."""
        await _DELETE.run(conn, {"lease": lease.name, "held": lease.token})

    async def _keep(self, name: str, token: str) -> None:
        """Renew now (one period after the claim), then every period."""
        while True:
            try:
                if not await self.renew(name, token):
                    log.error("lost the lease on %s (not renewed within %.0f s)", name, self.ttl)
                    return
            except Exception:
                log.exception("renewing the lease on %s failed; retrying", name)
            await asyncio.sleep(self.renew_every)
