"""`cargobay admin webhooks ...`: manage the account's webhooks and read their deliveries."""

from __future__ import annotations

import click

from cargobay.cli.common import _emit, _fail, _with_database
from cargobay.config import Settings

# `cargobay.events.webhooks` (and SQLAlchemy with it) is imported inside each command: this
# module is loaded by every `cargobay` invocation, `serve`'s supervisor included, which must
# stay small (see server.py).


@click.group("webhooks")
def webhooks() -> None:
    """Webhooks that receive the account's events (EventBridge envelopes, signed)."""


@webhooks.command("list")
@click.pass_obj
def webhooks_list(settings: Settings) -> None:
    """List the account's webhooks (and the deployment's, from the config file)."""
    from cargobay.events import webhooks as store

    found = _with_database(settings, lambda db, _: store.list_webhooks(db, settings.account_id))
    _emit({"Webhooks": found})


@webhooks.command("add")
@click.argument("url")
@click.option("--pattern", default=None, help="An EventBridge event pattern (JSON).")
@click.option("--secret", default=None, help="HMAC secret (default: generated, shown once).")
@click.pass_obj
def webhooks_add(settings: Settings, url: str, pattern: str | None, secret: str | None) -> None:
    """Send the account's events (those matching --pattern) to URL."""
    from cargobay.events import webhooks as store

    try:
        added = _with_database(
            settings,
            lambda db, box: store.add(
                db, box, url, account_id=settings.account_id, pattern=pattern, secret=secret
            ),
        )
    except store.WebhookError as exc:
        _fail(exc)
    _emit({"Webhook": added})


@webhooks.command("remove")
@click.argument("webhook_id", type=int)
@click.pass_obj
def webhooks_remove(settings: Settings, webhook_id: int) -> None:
    """Delete a webhook and its delivery history."""
    from cargobay.events import webhooks as store

    try:
        _with_database(settings, lambda db, _: store.remove(db, settings.account_id, webhook_id))
    except store.WebhookError as exc:
        _fail(exc)


@webhooks.command("deliveries")
@click.argument("webhook_id", type=int)
@click.option("--limit", type=int, default=100, show_default=True)
@click.pass_obj
def webhooks_deliveries(settings: Settings, webhook_id: int, limit: int) -> None:
    """The newest deliveries of a webhook: status, attempts, last HTTP status and error."""
    from cargobay.events import webhooks as store

    try:
        found = _with_database(
            settings,
            lambda db, _: store.deliveries(db, settings.account_id, webhook_id, limit),
        )
    except store.WebhookError as exc:
        _fail(exc)
    _emit({"Deliveries": found})
