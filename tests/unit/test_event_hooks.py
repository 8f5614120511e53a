"""The hooks the doors and services call: an event emitted in a push's transaction, an audit
record built from an aiohttp request (client address through trusted proxies only)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

from aiohttp.test_utils import make_mocked_request
from sqlalchemy import select

from cargobay.audit import query
from cargobay.audit.hooks import audit_call, is_read_only
from cargobay.audit.record import Resource, close_all
from cargobay.config import Settings
from cargobay.events import hooks
from cargobay.iam.principal import Principal
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database


def _request(remote: str, forwarded: str):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda key, default=None: (
        (remote, 1234) if key == "peername" else default
    )
    return make_mocked_request(
        "POST",
        "/",
        headers={"X-Forwarded-For": forwarded, "User-Agent": "aws-cli/2.15"},
        transport=transport,
    )


def test_hooks_emit_and_audit(tmp_path: Path) -> None:
    async def scenario() -> None:
        url = f"sqlite:///{tmp_path / 'h.db'}"
        await migrations.upgrade(url)
        db = Database(url)
        try:
            async with db.write() as conn:
                await hooks.image_pushed(
                    conn,
                    account="123456789012",
                    region="us-east-1",
                    repository="team/app",
                    digest="sha256:" + "a" * 64,
                    tag="1.0",
                    media_type="application/vnd.oci.image.manifest.v1+json",
                )
            async with db.read() as conn:
                body = (await conn.execute(select(schema.events.c.body))).scalar_one()
            event = json.loads(body)
            assert event["detail"]["action-type"] == "PUSH"
            assert event["detail"]["image-tag"] == "1.0"

            settings = Settings(trusted_proxies="10.0.0.0/8", audit_flush_ms=0)
            services = SimpleNamespace(settings=settings, db=db)
            alice = Principal("123456789012", "alice", "AKIAALICE")
            # Through a trusted proxy: the forwarded client address.
            await audit_call(
                _request("10.9.9.9", "203.0.113.7"),
                services,
                event_source="ecr.amazonaws.com",
                event_name="SetRepositoryPolicy",
                account_id="123456789012",
                principal=alice,
                request_parameters={"repositoryName": "team/app", "policyText": "{}"},
                resources=[Resource("AWS::ECR::Repository", "team/app")],
                request_id="r1",
            )
            # From an untrusted peer: X-Forwarded-For is ignored.
            await audit_call(
                _request("198.51.100.1", "203.0.113.7"),
                services,
                event_source="ecr.amazonaws.com",
                event_name="DeleteRepository",
                account_id="123456789012",
                principal=alice,
                error_code="AccessDenied",
                error_message="denied",
            )
            # Pulls are audited only when audit_pulls is on.
            await audit_call(
                _request("198.51.100.1", ""),
                services,
                event_source="registry.cargobay",
                event_name="GetManifest",
                account_id="123456789012",
                principal=alice,
                pull=True,
            )
            await close_all()
            page, _ = await query.lookup(db, "123456789012")
            records = [json.loads(r.record) for r in page]
            assert [r["eventName"] for r in records] == ["DeleteRepository", "SetRepositoryPolicy"]
            assert records[0]["sourceIPAddress"] == "198.51.100.1"
            assert records[0]["errorCode"] == "AccessDenied"
            assert records[1]["sourceIPAddress"] == "203.0.113.7"
            assert records[1]["userAgent"] == "aws-cli/2.15"
            assert records[1]["requestParameters"]["policyText"].startswith("sha256:")
            assert page[1].resources == [("AWS::ECR::Repository", "team/app")]
        finally:
            await db.dispose()

    asyncio.run(scenario())


def test_read_only_follows_the_operation_name() -> None:
    assert is_read_only("DescribeImages")
    assert is_read_only("BatchGetImage")
    assert is_read_only("LookupEvents")
    assert not is_read_only("PutImage")
    assert not is_read_only("BatchDeleteImage")
