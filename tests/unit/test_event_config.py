"""`[[webhooks]]` settings: parsed from TOML or CARGOBAY_WEBHOOKS, validated at start-up, and
synced into the database (config webhooks follow the file; admin-added ones are left alone)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cargobay.config import ConfigError, WebhookSetting, load_settings
from cargobay.events import webhooks
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.metadata import migrations
from cargobay.metadata.db import Database

GOOD = """
[[webhooks]]
url = "https://ci.internal/hooks/registry"
secret = "0123456789abcdef-secret"
event_pattern = '{"source":["aws.ecr"],"detail-type":["ECR Image Action"]}'

[[webhooks]]
url = "http://audit.internal/in"
secret = "another-long-secret-value"
account_id = "111111111111"
"""


def test_toml_webhooks_are_parsed(tmp_path: Path) -> None:
    path = tmp_path / "cargobay.toml"
    path.write_text(GOOD)
    settings = load_settings(path, environ={})
    assert [(w.url, w.account_id) for w in settings.webhooks] == [
        ("https://ci.internal/hooks/registry", None),
        ("http://audit.internal/in", "111111111111"),
    ]
    assert "secret" not in repr(settings.webhooks[0])  # never printed with the settings
    assert settings.webhook_retry_seconds == 86400
    assert settings.audit_retention_days == 90


def test_environment_takes_a_json_list() -> None:
    settings = load_settings(
        environ={"CARGOBAY_WEBHOOKS": '[{"url":"http://h/x","secret":"sixteen-chars-ok!"}]'}
    )
    assert settings.webhooks == (WebhookSetting("http://h/x", "sixteen-chars-ok!"),)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('url = "ftp://x"\nsecret = "0123456789abcdef"', "not an http"),
        ('url = "http://x"\nsecret = "short"', "at least 16"),
        ('url = "http://x"\nsecret = "0123456789abcdef"\nevent_pattern = "{}"', "at least one"),
        ('url = "http://x"\nsecret = "0123456789abcdef"\ncolour = "red"', "unknown key"),
        ('secret = "0123456789abcdef"', "needs a url"),
        ('url = "http://x"\nsecret = "0123456789abcdef"\naccount_id = "12"', "12 digits"),
    ],
)
def test_bad_webhooks_stop_start_up(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "cargobay.toml"
    path.write_text(f"[[webhooks]]\n{entry}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(path, environ={})


def test_sync_follows_the_file_and_leaves_admin_webhooks(tmp_path: Path) -> None:
    async def scenario() -> None:
        url = f"sqlite:///{tmp_path / 'sync.db'}"
        await migrations.upgrade(url)
        db = Database(url)
        box = SecretBox(new_key())
        try:
            first = (
                WebhookSetting("http://a/1", "secret-number-one!!"),
                WebhookSetting("http://b/2", "secret-number-two!!", '{"source":["aws.ecr"]}'),
            )
            await webhooks.add(db, box, "http://admin/x", account_id="000000000000")
            await webhooks.sync_config(db, box, first)
            await webhooks.sync_config(db, box, first)  # idempotent
            listed = await webhooks.list_webhooks(db, None)
            assert [(w["url"], w["origin"]) for w in listed] == [
                ("http://admin/x", "admin"),
                ("http://a/1", "config"),
                ("http://b/2", "config"),
            ]
            ids = {w["url"]: w["id"] for w in listed}
            # Changed pattern, one removed: updated in place, the other deleted.
            second = (WebhookSetting("http://b/2", "secret-number-two!!", '{"source":["x"]}'),)
            await webhooks.sync_config(db, box, second)
            listed = await webhooks.list_webhooks(db, None)
            assert [(w["url"], w["id"], w["pattern"]) for w in listed] == [
                ("http://admin/x", ids["http://admin/x"], None),
                ("http://b/2", ids["http://b/2"], '{"source":["x"]}'),
            ]
        finally:
            await db.dispose()

    asyncio.run(scenario())
