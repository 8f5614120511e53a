"""Webhook delivery: background loops, one per serving process, that claim due deliveries from
the shared database and POST them.

A claim is one conditional UPDATE that sets a lease on rows that are pending, due and not leased
(on PostgreSQL the candidate rows are picked `FOR UPDATE SKIP LOCKED`, so concurrent deliverers
take different rows instead of queueing; on SQLite write transactions are serialised anyway). So
each delivery has one deliverer at a time across workers and nodes; a deliverer that dies leaves
a lease that expires, and another retries: at-least-once, with the event id in a header for
de-duplication. Results are written only while the lease is still ours.

Each POST carries `X-Cargobay-Signature: sha256=<hex HMAC-SHA256 of the body under the webhook's
secret>`, `X-Cargobay-Event-Id` and `X-Cargobay-Delivery-Id`. A failed attempt is retried after
`backoff * 2**(attempt-1)` seconds (at most an hour) until `retry_seconds` after the event, then
the delivery is marked failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import Float, bindparam, select

from cargobay.events.outbox import add_counters, latency_counts
from cargobay.iam.secrets import SecretBox
from cargobay.jobs.leases import holder_id
from cargobay.jobs.loop import BackgroundLoop
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead

log = logging.getLogger("cargobay.events")

SIGNATURE_HEADER = "X-Cargobay-Signature"
EVENT_ID_HEADER = "X-Cargobay-Event-Id"
DELIVERY_ID_HEADER = "X-Cargobay-Delivery-Id"
MAX_BACKOFF = 3600.0


def signature(secret: str, body: bytes) -> str:
    """The signature header's value for a body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does (constant-time); used by the tests and documented for users."""
    return hmac.compare_digest(signature(secret, body), header)


_d = schema.webhook_deliveries
_now = bindparam("now", type_=Float)
_ANY_DUE = HotRead(
    select(_d.c.id)
    .where(_d.c.status == "pending", _d.c.next_attempt_at <= _now, _d.c.lease_expires_at < _now)
    .limit(1)
)


@dataclass
class _Claimed:
    id: int
    attempts: int
    created_at: float
    event_id: str
    event_type: str
    account_id: str
    event_created_at: float
    body: str
    url: str
    secret: str


# A sent delivery: the claimed row, the HTTP status (None: no answer) and the error (None: 2xx).
_Outcome = tuple[_Claimed, int | None, str | None]


class Deliverer(BackgroundLoop):
    """Claims and sends due deliveries; `start` runs it in the background of a serving process."""

    def __init__(
        self,
        db: Database,
        box: SecretBox,
        *,
        retry_seconds: float = 86400.0,
        backoff_seconds: float = 2.0,
        poll_seconds: float = 1.0,
        batch: int = 16,
        timeout: float = 10.0,
        holder: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.clock = clock  # tests pass a fake one to step through retries
        self.box = box
        self.retry_seconds = retry_seconds
        self.backoff_seconds = backoff_seconds
        self.poll_seconds = poll_seconds
        self.batch = batch
        self.timeout = timeout
        self.lease = timeout * 3 + 30.0  # a batch is sent concurrently: one timeout, and margin
        self.holder = holder or f"{holder_id()}:deliver"
        self._secrets: dict[str, str] = {}
        self._session: aiohttp.ClientSession | None = None

    # -- the background loop -------------------------------------------------------------------

    async def stop(self) -> None:
        await super().stop()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _loop(self) -> None:
        while True:
            try:
                sent = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook delivery round failed")
                sent = 0
            if sent < self.batch:
                await asyncio.sleep(self.poll_seconds)

    # -- one round -----------------------------------------------------------------------------

    async def run_once(self, now: float | None = None) -> int:
        """Claim up to `batch` due deliveries and send them; returns how many were attempted."""
        now = self.clock() if now is None else now
        if not await self._any_due(now):
            return 0
        claimed = await self._claim(now)
        if claimed:
            outcomes = await asyncio.gather(*(self._deliver(item) for item in claimed))
            await self._finish(outcomes, self.clock())
        return len(claimed)

    async def _any_due(self, now: float) -> bool:
        """A cheap indexed read first, so idle loops never take the write lock (a
        `metadata.hot` lookup, built once: every worker polls it every second)."""
        return await _ANY_DUE.first(self.db, {"now": now}) is not None

    async def _claim(self, now: float) -> list[_Claimed]:
        d, e, w = schema.webhook_deliveries, schema.events, schema.webhooks
        due = (
            select(d.c.id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now, d.c.lease_expires_at < now)
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(self.batch)
        )
        due = due.with_for_update(skip_locked=True)  # SQLite leaves it out
        async with self.db.write() as conn:
            ids = [
                row.id
                for row in (
                    await conn.execute(
                        d.update()
                        .where(
                            d.c.id.in_(due.scalar_subquery()),
                            d.c.status == "pending",
                            d.c.lease_expires_at < now,
                        )
                        .values(lease_holder=self.holder, lease_expires_at=now + self.lease)
                        .returning(d.c.id)
                    )
                ).all()
            ]
            if not ids:
                return []
            rows = (
                await conn.execute(
                    select(
                        d.c.id,
                        d.c.attempts,
                        d.c.created_at,
                        e.c.id.label("event_id"),
                        e.c.detail_type,
                        e.c.account_id,
                        e.c.created_at.label("event_created_at"),
                        e.c.body,
                        w.c.url,
                        w.c.secret,
                    )
                    .join(e, e.c.id == d.c.event_id)
                    .join(w, w.c.id == d.c.webhook_id)
                    .where(d.c.id.in_(ids))
                    .order_by(d.c.id)
                )
            ).all()
        return [
            _Claimed(
                id=r.id,
                attempts=r.attempts,
                created_at=r.created_at,
                event_id=r.event_id,
                event_type=r.detail_type,
                account_id=r.account_id,
                event_created_at=r.event_created_at,
                body=r.body,
                url=r.url,
                secret=r.secret,
            )
            for r in rows
        ]

    def _open(self, sealed: str) -> str:
        if sealed not in self._secrets:
            self._secrets[sealed] = self.box.open(sealed)
        return self._secrets[sealed]

    async def _deliver(self, item: _Claimed) -> _Outcome:
        """POST one delivery; what happened (written with the round's others by `_finish`)."""
        body = item.body.encode()
        status: int | None = None
        error: str | None = None
        try:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "cargobay-webhooks",
                SIGNATURE_HEADER: signature(self._open(item.secret), body),
                EVENT_ID_HEADER: item.event_id,
                DELIVERY_ID_HEADER: str(item.id),
                "X-Cargobay-Event-Type": item.event_type,
            }
            if self._session is None:
                self._session = aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=self.timeout)
                )
            async with self._session.post(
                item.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await response.read()
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection refused, timeout, DNS, a secret we cannot open
            error = f"{type(exc).__name__}: {exc}"[:1000] or type(exc).__name__
        return item, status, error

    def backoff(self, attempts: int) -> float:
        return min(self.backoff_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF)

    async def _finish(self, outcomes: Sequence[_Outcome], now: float) -> None:
        """Record a round's outcomes in one write transaction (one turn of SQLite's write lock
        per round, not per delivery, so deliveries do not slow pushes down)."""
        d = schema.webhook_deliveries
        counters: dict[str, dict[str, float]] = {}
        async with self.db.write() as conn:
            for item, status, error in outcomes:
                attempts = item.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_status": status,
                    "last_error": error,
                    "lease_holder": None,
                    "lease_expires_at": 0.0,
                }
                counted: dict[str, float]
                if error is None:
                    values.update(status="delivered", finished_at=now)
                    latency = max(now - item.event_created_at, 0.0)
                    counted = {"delivered": 1.0, **latency_counts(latency)}
                else:
                    next_at = now + self.backoff(attempts)
                    if next_at - item.created_at > self.retry_seconds:
                        values.update(status="failed", finished_at=now)
                        counted = {"failed": 1.0}
                        log.warning(
                            "webhook delivery %s to %s failed: %s", item.id, item.url, error
                        )
                    else:
                        values.update(next_attempt_at=next_at)
                        counted = {}
                result = await conn.execute(
                    d.update()
                    .where(
                        d.c.id == item.id, d.c.lease_holder == self.holder, d.c.status == "pending"
                    )
                    .values(**values)
                )
                if result.rowcount == 1:  # still ours: count it once
                    total = counters.setdefault(item.account_id, {})
                    for name, amount in counted.items():
                        total[name] = total.get(name, 0.0) + amount
            for account, amounts in sorted(counters.items()):
                await add_counters(conn, account, amounts)
