"""`cargobay audit`: read the account's audit trail; `--json` prints one CloudTrail record per
line (JSON lines, for a SIEM)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from cargobay.config import ConfigError, load_settings

_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PAGE = 500


def parse_time(value: str, now: float | None = None) -> float:
    """`90s`, `15m`, `1h`, `7d` ago, or an ISO-8601 time (UTC unless it says otherwise)."""
    now = time.time() if now is None else now
    match = _DURATION.fullmatch(value.strip())
    if match:
        return now - int(match.group(1)) * _UNITS[match.group(2)]
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: use 30m, 1h, 7d or an ISO-8601 time") from None
    if parsed.tzinfo is None:
        from datetime import UTC

        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@click.command("audit")
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--database", default=None, help="Metadata database URL.")
@click.option("--config", type=click.Path(path_type=Path), default=None)
@click.option("--account-id", default=None, help="The account (default: the registry's).")
@click.option("--since", default="1h", show_default=True, help="30m, 1h, 7d or an ISO time.")
@click.option("--until", default=None, help="End of the range (default: now).")
@click.option("--principal", default=None, help="Only calls by this user name.")
@click.option("--access-key-id", default=None, help="Only calls signed with this key.")
@click.option("--event-name", default=None, help="Only this API call, e.g. PutImage.")
@click.option("--limit", type=int, default=0, help="At most this many records (0: all).")
@click.option("--region", default=None, help="Only calls made in this region (default: all).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines: one CloudTrail record each.")
def audit(
    since: str,
    until: str | None,
    principal: str | None,
    access_key_id: str | None,
    event_name: str | None,
    limit: int,
    region: str | None,
    as_json: bool,
    **options: object,
) -> None:
    """Who did what: the account's API calls, newest first."""
    from cargobay.audit.query import AuditQueryError, lookup
    from cargobay.metadata import migrations
    from cargobay.metadata.db import Database, SchemaOutOfDate

    config_file = options.pop("config", None)
    try:
        settings = load_settings(config_file, overrides=options)  # type: ignore[arg-type]
    except ConfigError as exc:
        click.echo(f"cargobay: {exc}", err=True)
        sys.exit(2)
    attributes = [
        (key, value)
        for key, value in (
            ("Username", principal),
            ("AccessKeyId", access_key_id),
            ("EventName", event_name),
        )
        if value
    ]
    start = parse_time(since)
    end = parse_time(until) if until else None

    async def main() -> None:
        await migrations.ensure(settings.database_url, upgrade_schema=settings.upgrade_on_start)
        db = Database(settings.database_url)
        shown = 0
        token = None
        try:
            while True:
                size = min(PAGE, limit - shown) if limit else PAGE
                records, token = await lookup(
                    db,
                    settings.account_id,
                    attributes=attributes,
                    start=start,
                    end=end,
                    max_results=size,
                    next_token=token,
                    page_limit=PAGE,
                    region=region,
                )
                for record in records:
                    click.echo(record.record if as_json else _line(record.record))
                shown += len(records)
                if token is None or (limit and shown >= limit):
                    return
        finally:
            await db.dispose()

    try:
        asyncio.run(main())
    except (SchemaOutOfDate, AuditQueryError) as exc:
        click.echo(f"cargobay: {exc}", err=True)
        sys.exit(1)


def _line(text: str) -> str:
    record = json.loads(text)
    who = record["userIdentity"].get("userName") or record["userIdentity"].get("type", "")
    outcome = record.get("errorCode") or "OK"
    return (
        f"{record['eventTime']}  {record['eventSource']:<24} {record['eventName']:<28} "
        f"{who:<20} {record.get('sourceIPAddress') or '-':<16} {outcome}"
    )
