"""Webhooks with a real `cargobay serve`: `[[webhooks]]` from the settings are synced at start-up,
the serving processes deliver events committed while the server was down (as after a SIGKILL
between a commit and its delivery), and `cargobay admin webhooks` shows the deliveries."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pgcluster
from cargobay.events import model, outbox
from cargobay.metadata.db import Database
from e2e.webhookhelp import Receiver
from server import Server

pytestmark = pytest.mark.backend

SECRET = "a-long-enough-webhook-secret"
PATH = "/hooks/registry"
PUSHES = {
    "source": ["aws.ecr"],
    "detail-type": ["ECR Image Action"],
    "detail": {"action-type": ["PUSH"]},
}


def admin(server: Server, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "cargobay", "admin", "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        env=server.process_env,
        timeout=120,
        check=True,
    ).stdout
    return json.loads(out)


def _commit(server: Server, *events: dict) -> None:
    async def run() -> None:
        db = Database(server.settings.database_url)
        try:
            async with db.write() as conn:
                for event in events:
                    await outbox.emit(conn, event)
        finally:
            await db.dispose()

    asyncio.run(run())


def test_events_committed_while_down_are_delivered_after_restart(tmp_path: Path) -> None:
    receiver = Receiver({PATH: SECRET})
    server = Server(tmp_path / "data")
    server.env = {
        "CARGOBAY_WEBHOOKS": json.dumps(
            [{"url": receiver.url(PATH), "secret": SECRET, "event_pattern": json.dumps(PUSHES)}]
        ),
        "CARGOBAY_WEBHOOK_POLL_SECONDS": "1",
    }
    try:
        server.start()
        listed = admin(server, "webhooks", "list")["Webhooks"]
        assert [(w["url"], w["origin"], w["account_id"]) for w in listed] == [
            (receiver.url(PATH), "config", None)
        ]
        webhook_id = listed[0]["id"]
        server.kill()

        common = {"account": "000000000000", "region": "us-east-1", "repository": "team/app"}
        push = model.image_action(**common, digest="sha256:" + "1" * 64, action="PUSH", tag="v1")
        delete = model.image_action(**common, digest="sha256:" + "1" * 64, action="DELETE")
        _commit(server, push, delete)

        server.start()
        deadline = time.monotonic() + 60
        while not receiver.events[PATH] and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # a second poll round on every worker: nothing more may arrive
        assert [e["id"] for e in receiver.events[PATH]] == [push["id"]]
        assert receiver.events[PATH][0] == push
        assert receiver.bad == 0
        history = admin(server, "webhooks", "deliveries", str(webhook_id))["Deliveries"]
        assert [(d["event_id"], d["status"], d["attempts"]) for d in history] == [
            (push["id"], "delivered", 1)
        ]

        metrics = server.session().get(f"{server.url}/metrics", timeout=10).text
        assert 'cargobay_events_emitted_total{registry_id="000000000000"} 2' in metrics
        assert (
            'cargobay_webhook_deliveries_total{registry_id="000000000000",outcome="delivered"} 1'
        ) in metrics

        # Removed from the settings: gone at the next start.
        server.stop()
        server.env["CARGOBAY_WEBHOOKS"] = "[]"
        server.start()
        assert admin(server, "webhooks", "list")["Webhooks"] == []
    finally:
        server.discard()
        receiver.close()


def test_two_nodes_on_postgresql_deliver_each_event_once(tmp_path: Path) -> None:
    """Two `cargobay serve` nodes (two workers each) on one PostgreSQL database: four delivery
    loops compete for the same deliveries, and the receiver still gets every event once."""
    receiver = Receiver({PATH: SECRET})
    pg = pgcluster.shared_cluster()
    database = pg.url(pg.database_for(tmp_path / "shared"))
    shared_env = {
        "CARGOBAY_DATABASE": database,
        "CARGOBAY_AUTO_UPGRADE": "true",
        "CARGOBAY_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CARGOBAY_WEBHOOKS": json.dumps([{"url": receiver.url(PATH), "secret": SECRET}]),
        "CARGOBAY_WEBHOOK_POLL_SECONDS": "1",
    }
    nodes = []
    try:
        for i in range(2):
            node = Server(tmp_path / f"node{i}", workers=2, env=dict(shared_env))
            node.backend_env = {}  # the shared database above
            nodes.append(node.start())
        common = {"account": "000000000000", "region": "us-east-1", "repository": "team/app"}
        events = [
            model.image_action(**common, digest="sha256:" + f"{i:064x}", action="PUSH", tag=f"t{i}")
            for i in range(40)
        ]
        _commit(nodes[0], *events)
        deadline = time.monotonic() + 60
        while len(receiver.events[PATH]) < len(events) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # another poll round on every worker: nothing more may arrive
        ids = [e["id"] for e in receiver.events[PATH]]
        assert sorted(ids) == sorted(e["id"] for e in events)
        assert len(ids) == len(set(ids))
        assert receiver.bad == 0
    finally:
        for node in nodes:
            node.stop()
        pg.drop_database(pg.database_for(tmp_path / "shared"))
        receiver.close()
