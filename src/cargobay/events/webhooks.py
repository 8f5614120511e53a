"""Webhook endpoints: stored per account (or for every account, from the config file) with a
sealed secret and an optional EventBridge pattern; and the delivery history an operator reads."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update

from cargobay.config import WebhookSetting
from cargobay.events.pattern import PatternError, compile_pattern
from cargobay.iam.secrets import SecretBox
from cargobay.metadata import schema
from cargobay.metadata.db import Database

_URL = re.compile(r"https?://[^/\s]+\S*")


class WebhookError(ValueError):
    """A webhook that cannot be stored, or one that does not exist; the message says why."""


def _check(url: str, secret: str, pattern: str | None) -> str | None:
    if not _URL.fullmatch(url):
        raise WebhookError(f"{url!r} is not an http(s) URL")
    if len(secret) < 16:
        raise WebhookError("a webhook secret needs at least 16 characters")
    if not pattern:
        return None
    try:
        return compile_pattern(pattern).text()
    except PatternError as exc:
        raise WebhookError(str(exc)) from None


def _visible(account_id: str | None) -> Any:
    w = schema.webhooks
    if account_id is None:
        return w.c.id.is_not(None)
    return or_(w.c.account_id == account_id, w.c.account_id.is_(None))


async def add(
    db: Database,
    box: SecretBox,
    url: str,
    *,
    account_id: str | None,
    pattern: str | None = None,
    secret: str | None = None,
) -> dict[str, Any]:
    """Store a webhook; a secret is generated when none is given (and then shown only in this
    answer)."""
    generated = not secret
    secret = secret or secrets.token_urlsafe(32)
    pattern = _check(url, secret, pattern)
    now = time.time()
    async with db.write() as conn:
        result = await conn.execute(
            insert(schema.webhooks)
            .values(
                account_id=account_id,
                url=url,
                secret=box.seal(secret),
                pattern=pattern,
                enabled=True,
                origin="admin",
                created_at=now,
            )
            .returning(schema.webhooks.c.id)
        )
        webhook_id = result.scalar_one()
    added = {"id": webhook_id, "url": url, "pattern": pattern}
    if generated:
        added["secret"] = secret
    return added


async def list_webhooks(db: Database, account_id: str | None) -> list[dict[str, Any]]:
    w, d = schema.webhooks, schema.webhook_deliveries
    async with db.read() as conn:
        rows = (await conn.execute(select(w).where(_visible(account_id)).order_by(w.c.id))).all()
        counts: dict[tuple[int, str], int] = {
            (row.webhook_id, row.status): row.count
            for row in (
                await conn.execute(
                    select(d.c.webhook_id, d.c.status, func.count().label("count"))
                    .where(d.c.webhook_id.in_([r.id for r in rows]))
                    .group_by(d.c.webhook_id, d.c.status)
                )
            ).all()
        }
    return [
        {
            "id": r.id,
            "url": r.url,
            "account_id": r.account_id,
            "pattern": r.pattern,
            "enabled": r.enabled,
            "origin": r.origin,
            "deliveries": {
                status: counts.get((r.id, status), 0)
                for status in ("pending", "delivered", "failed")
            },
        }
        for r in rows
    ]


async def _require(conn: Any, account_id: str | None, webhook_id: int) -> None:
    """WebhookError unless the webhook exists and `account_id` may see it (`_visible`)."""
    w = schema.webhooks
    query = select(w.c.id).where(w.c.id == webhook_id, _visible(account_id))
    if (await conn.execute(query)).first() is None:
        raise WebhookError(f"no webhook {webhook_id}")


async def remove(db: Database, account_id: str | None, webhook_id: int) -> None:
    w, d = schema.webhooks, schema.webhook_deliveries
    async with db.write() as conn:
        await _require(conn, account_id, webhook_id)
        await conn.execute(delete(d).where(d.c.webhook_id == webhook_id))
        await conn.execute(delete(w).where(w.c.id == webhook_id))


async def deliveries(
    db: Database, account_id: str | None, webhook_id: int, limit: int = 100
) -> list[dict[str, Any]]:
    """The newest deliveries of one webhook, with their state and last error."""
    d, e = schema.webhook_deliveries, schema.events
    async with db.read() as conn:
        await _require(conn, account_id, webhook_id)
        rows = (
            await conn.execute(
                select(d, e.c.detail_type)
                .join(e, e.c.id == d.c.event_id)
                .where(d.c.webhook_id == webhook_id)
                .order_by(d.c.id.desc())
                .limit(limit)
            )
        ).all()
    return [
        {
            "id": r.id,
            "event_id": r.event_id,
            "detail_type": r.detail_type,
            "status": r.status,
            "attempts": r.attempts,
            "next_attempt_at": r.next_attempt_at if r.status == "pending" else None,
            "last_status": r.last_status,
            "last_error": r.last_error,
            "created_at": r.created_at,
            "finished_at": r.finished_at,
        }
        for r in rows
    ]


async def sync_config(db: Database, box: SecretBox, configured: Iterable[WebhookSetting]) -> int:
    """Make the config file's webhooks the stored `origin = config` ones (keyed by URL and
    account): add new ones, update changed secrets and patterns, delete removed ones.
    Webhooks added with `cargobay admin webhooks add` are left alone. Idempotent."""
    w, d = schema.webhooks, schema.webhook_deliveries
    wanted = {(c.url, c.account_id): c for c in configured}
    now = time.time()
    async with db.write() as conn:
        stored = (await conn.execute(select(w).where(w.c.origin == "config"))).all()
        seen = set()
        for row in stored:
            key = (row.url, row.account_id)
            entry = wanted.get(key)
            if entry is None or key in seen:
                await conn.execute(delete(d).where(d.c.webhook_id == row.id))
                await conn.execute(delete(w).where(w.c.id == row.id))
                continue
            seen.add(key)
            pattern = _check(entry.url, entry.secret, entry.event_pattern)
            changes: dict[str, Any] = {}
            if pattern != row.pattern:
                changes["pattern"] = pattern
            if box.open(row.secret) != entry.secret:
                changes["secret"] = box.seal(entry.secret)
            if not row.enabled:
                changes["enabled"] = True
            if changes:
                await conn.execute(update(w).where(w.c.id == row.id).values(**changes))
        for key, entry in wanted.items():
            if key in seen:
                continue
            pattern = _check(entry.url, entry.secret, entry.event_pattern)
            await conn.execute(
                insert(w).values(
                    account_id=entry.account_id,
                    url=entry.url,
                    secret=box.seal(entry.secret),
                    pattern=pattern,
                    enabled=True,
                    origin="config",
                    created_at=now,
                )
            )
    return len(wanted)
