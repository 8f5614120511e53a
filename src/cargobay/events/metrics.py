"""The events' figures for /metrics, from the shared database (every worker and node reports
the same): events emitted, deliveries delivered and failed, and the delivery latency (from the
commit of the event to the receiver's 2xx) as a Prometheus histogram, per account."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from cargobay.events.outbox import LATENCY_BUCKETS
from cargobay.metadata import schema
from cargobay.metadata.db import Database


async def lines(db: Database, registry_id: str | None = None) -> list[str]:
    """Prometheus text lines; `registry_id` limits them to one account."""
    e, c = schema.events, schema.event_counters
    emitted_q = select(e.c.account_id, func.count()).group_by(e.c.account_id)
    counters_q = select(c.c.account_id, c.c.name, c.c.value)
    if registry_id is not None:
        emitted_q = emitted_q.where(e.c.account_id == registry_id)
        counters_q = counters_q.where(c.c.account_id == registry_id)
    async with db.read() as conn:
        emitted = dict((await conn.execute(emitted_q)).all())
        counters: dict[str, dict[str, float]] = defaultdict(dict)
        for account, name, value in (await conn.execute(counters_q)).all():
            counters[account][name] = value
    accounts = sorted(set(emitted) | set(counters))
    out = [
        "# HELP cargobay_events_emitted_total Events written to the outbox.",
        "# TYPE cargobay_events_emitted_total counter",
    ]
    for account in accounts:
        total = emitted.get(account, 0) + counters[account].get("events_purged", 0.0)
        out.append(f'cargobay_events_emitted_total{{registry_id="{account}"}} {total:g}')
    out += [
        "# HELP cargobay_webhook_deliveries_total Webhook deliveries finished, by outcome.",
        "# TYPE cargobay_webhook_deliveries_total counter",
    ]
    for account in accounts:
        for outcome in ("delivered", "failed"):
            value = counters[account].get(outcome, 0.0)
            out.append(
                f'cargobay_webhook_deliveries_total{{registry_id="{account}",'
                f'outcome="{outcome}"}} {value:g}'
            )
    name = "cargobay_webhook_delivery_latency_seconds"
    out += [
        f"# HELP {name} Time from an event's commit to its delivery.",
        f"# TYPE {name} histogram",
    ]
    for account in accounts:
        values = counters[account]
        label = f'registry_id="{account}"'
        for bound in LATENCY_BUCKETS:
            count = values.get(f"latency_le_{bound:g}", 0.0)
            out.append(f'{name}_bucket{{{label},le="{bound:g}"}} {count:g}')
        count = values.get("latency_count", 0.0)
        out.append(f'{name}_bucket{{{label},le="+Inf"}} {count:g}')
        out.append(f"{name}_sum{{{label}}} {values.get('latency_sum', 0.0):g}")
        out.append(f"{name}_count{{{label}}} {count:g}")
    return out
