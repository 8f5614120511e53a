"""The transactional outbox: events are written in the transaction of the change that causes
them, with one delivery row per matching webhook, so a crash never loses an event of a committed
change nor sends one of a change that rolled back. Delivery happens later (events.delivery).

Hook for the registry services (call inside the open write transaction, after the change):

    async with db.write() as conn:
        ...  # the push or delete
        await outbox.emit(conn, model.image_action(account=..., region=..., ...))
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, exists, func, insert, or_, select

from cargobay.events.pattern import Pattern, compile_pattern
from cargobay.metadata import schema
from cargobay.metadata.hotwrite import HotWrite
from cargobay.metadata.sql import add_counts_many

# Delivery latency histogram bounds (seconds), from "at once" to "after a day of retries".
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 86400.0)


@lru_cache(maxsize=256)
def _compiled(text: str) -> Pattern:
    """Patterns by their text: a stored pattern was validated when stored, and compiling it is
    a pure function of the text, so every worker may cache it."""
    return compile_pattern(text)


# One encoder for every event: `json.dumps` with arguments builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def serialise(event: dict[str, Any]) -> str:
    return _ENCODE(event)


# Built once and, in a SQLite file's write transaction, run on the driver
# (`metadata.hotwrite`): an event is written in every push's transaction.
_INSERT_EVENT = HotWrite(
    lambda _dialect: insert(schema.events),
    names=("id", "account_id", "detail_type", "body", "created_at"),
)
_w = schema.webhooks
_ENABLED_WEBHOOKS = select(_w.c.id, _w.c.pattern).where(
    _w.c.enabled.is_(True),
    or_(_w.c.account_id.is_(None), _w.c.account_id == bindparam("account")),
)


def any_webhook(account: Any) -> Any:
    """Whether any enabled webhook may receive `account`'s events (a boolean SQL expression:
    the push hook reads it with the push's other settings, `registry.hooks`)."""
    return exists().where(
        _w.c.enabled.is_(True), or_(_w.c.account_id.is_(None), _w.c.account_id == account)
    )


async def emit(
    conn: Any, event: dict[str, Any], *, now: float | None = None, webhooks: bool = True
) -> int:
    """Write the event and its deliveries in the caller's write transaction (`db.write()`);
    returns how many webhooks will receive it. Never commits, never does network I/O.
    `webhooks=False` says the caller read, in this transaction, that no enabled webhook
    can receive the account's events (`any_webhook`): the webhooks are not read again."""
    now = time.time() if now is None else now
    account = event["account"]
    await _INSERT_EVENT.run(
        conn,
        {
            "id": event["id"],
            "account_id": account,
            "detail_type": event["detail-type"],
            "body": serialise(event),
            "created_at": now,
        },
    )
    if not webhooks:
        return 0
    rows = (await conn.execute(_ENABLED_WEBHOOKS, {"account": account})).all()
    targets = [r.id for r in rows if r.pattern is None or _compiled(r.pattern).matches(event)]
    if targets:
        await conn.execute(
            insert(schema.webhook_deliveries),
            [
                {
                    "event_id": event["id"],
                    "webhook_id": webhook_id,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "lease_holder": None,
                    "lease_expires_at": 0.0,
                    "created_at": now,
                }
                for webhook_id in targets
            ],
        )
    return len(targets)


async def add_counters(conn: Any, account: str, amounts: dict[str, float]) -> None:
    """Add to monotonic counters (one statement; many workers may add at once)."""
    if not amounts:
        return
    rows = [
        {"account_id": account, "name": name, "value": value} for name, value in amounts.items()
    ]
    await add_counts_many(conn, schema.event_counters, ["account_id", "name"], "value", rows)


def latency_counts(latency: float) -> dict[str, float]:
    """The histogram counters one delivery of this latency adds to."""
    counts = {f"latency_le_{bound:g}": 1.0 for bound in LATENCY_BUCKETS if latency <= bound}
    counts["latency_count"] = 1.0
    counts["latency_sum"] = latency
    return counts


async def purge(db: Any, *, retention_seconds: float, now: float | None = None) -> dict[str, int]:
    """Delete events older than the retention whose deliveries have all finished (their rows go
    with them); the counters keep counting what was purged."""
    now = time.time() if now is None else now
    e, d = schema.events, schema.webhook_deliveries
    cutoff = now - retention_seconds
    pending = select(d.c.id).where(d.c.event_id == e.c.id, d.c.status == "pending").exists()
    expired = (e.c.created_at < cutoff) & ~pending
    async with db.write() as conn:
        per_account = (
            await conn.execute(
                select(e.c.account_id, func.count()).where(expired).group_by(e.c.account_id)
            )
        ).all()
        for account, count in per_account:
            await add_counters(conn, account, {"events_purged": float(count)})
        # Deliveries first: SQLite cascades only where foreign keys are on.
        await conn.execute(d.delete().where(d.c.event_id.in_(select(e.c.id).where(expired))))
        await conn.execute(e.delete().where(expired))
    return {"events_purged": sum(count for _, count in per_account)}
