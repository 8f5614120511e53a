"""The events outbox on the selected metadata backend (SQLite, or PostgreSQL with
CARGOBAY_TEST_DATABASE=postgres): events are written with the change that causes them, a
receiver gets each one once with a valid signature, retries survive a receiver that is down, and
concurrent deliverers never send a delivery twice."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import func, select

import pgcluster
from cargobay.events import model, outbox, webhooks
from cargobay.events.delivery import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Deliverer,
    verify_signature,
)
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.metadata import migrations, schema
from cargobay.metadata.db import Database

pytestmark = pytest.mark.backend

ACCOUNT = "111111111111"
OTHER = "222222222222"
SECRET = "receiver-shared-secret-0123456789"
PUSHES = (
    '{"source":["aws.ecr"],"detail-type":["ECR Image Action"],"detail":{"action-type":["PUSH"]}}'
)


async def _database(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'events.db'}"
    await migrations.upgrade(url)
    return url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Receiver:
    """A webhook endpoint that records what it receives and checks each signature."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.received: list[dict] = []
        self.bad_signatures = 0
        self.delay = 0.0
        self.status = 204  # what it answers to a well-signed delivery
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify_signature(SECRET, body, request.headers.get(SIGNATURE_HEADER, "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        event = json.loads(body)
        assert request.headers[EVENT_ID_HEADER] == event["id"]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status >= 300:
            return web.Response(status=self.status)
        self.received.append(event)
        return web.Response(status=self.status)

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@asynccontextmanager
async def _setup(tmp_path: Path) -> AsyncIterator[tuple[Database, SecretBox]]:
    db = Database(await _database(tmp_path))
    try:
        yield db, SecretBox(new_key())
    finally:
        await db.dispose()


def _push(tag: str = "latest", account: str = ACCOUNT) -> dict:
    return model.image_action(
        account=account,
        region="us-east-1",
        repository="team/app",
        digest="sha256:" + "ab" * 32,
        action="PUSH",
        tag=tag,
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
    )


async def _emit(db: Database, *events: dict) -> None:
    async with db.write() as conn:
        for event in events:
            await outbox.emit(conn, event)


async def _drain(*deliverers: Deliverer, rounds: int = 50) -> None:
    for _ in range(rounds):
        sent = await asyncio.gather(*(d.run_once() for d in deliverers))
        if not any(sent):
            return


async def _count(db: Database, table) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


def test_committed_event_is_delivered_once_signed_and_rolled_back_one_never(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with _setup(tmp_path) as (db, box):
            receiver = await Receiver().start()
            deliverer = Deliverer(db, box, backoff_seconds=0.05)
            try:
                await webhooks.add(
                    db, box, receiver.url, account_id=ACCOUNT, pattern=PUSHES, secret=SECRET
                )
                committed = _push("v1")
                await _emit(db, committed)

                rolled_back = _push("v2")
                with pytest.raises(RuntimeError):
                    async with db.write() as conn:
                        await outbox.emit(conn, rolled_back)
                        raise RuntimeError("the push failed after the event was written")

                await _drain(deliverer)
                assert [e["id"] for e in receiver.received] == [committed["id"]]
                assert receiver.received[0] == committed  # the envelope, byte for byte
                assert receiver.bad_signatures == 0
                assert await _count(db, schema.events) == 1
                # Nothing left to send: a second round sends nothing again.
                await _drain(deliverer)
                assert len(receiver.received) == 1
            finally:
                await deliverer.stop()
                await receiver.stop()

    asyncio.run(scenario())


def test_patterns_and_accounts_select_the_webhooks(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _setup(tmp_path) as (db, box):
            receiver = await Receiver().start()
            deliverer = Deliverer(db, box)
            try:
                await webhooks.add(
                    db, box, receiver.url, account_id=ACCOUNT, pattern=PUSHES, secret=SECRET
                )
                delete = model.image_action(
                    account=ACCOUNT,
                    region="us-east-1",
                    repository="r",
                    digest="sha256:00",
                    action="DELETE",
                )
                foreign = _push(account=OTHER)
                push = _push()
                async with db.write() as conn:
                    assert await outbox.emit(conn, delete) == 0  # filtered out by the pattern
                    assert await outbox.emit(conn, foreign) == 0  # another account's event
                    assert await outbox.emit(conn, push) == 1
                await _drain(deliverer)
                assert [e["id"] for e in receiver.received] == [push["id"]]
            finally:
                await deliverer.stop()
                await receiver.stop()

    asyncio.run(scenario())


def test_receiver_down_then_up_gets_the_event_once_after_retries(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _setup(tmp_path) as (db, box):
            receiver = Receiver()  # not listening yet: connections are refused
            deliverer = Deliverer(db, box, backoff_seconds=0.05, poll_seconds=0.02)
            try:
                added = await webhooks.add(db, box, receiver.url, account_id=ACCOUNT, secret=SECRET)
                event = _push()
                await _emit(db, event)
                deliverer.start()
                for _ in range(500):
                    history = await webhooks.deliveries(db, ACCOUNT, added["id"])
                    if history[0]["attempts"] >= 3:
                        break
                    await asyncio.sleep(0.02)
                assert history[0]["status"] == "pending"
                assert history[0]["last_error"]
                await receiver.start()
                for _ in range(500):
                    history = await webhooks.deliveries(db, ACCOUNT, added["id"])
                    if history[0]["status"] != "pending":
                        break
                    await asyncio.sleep(0.02)
                assert history[0]["status"] == "delivered"
                assert history[0]["attempts"] >= 4
                assert history[0]["last_error"] is None
                assert [e["id"] for e in receiver.received] == [event["id"]]
            finally:
                await deliverer.stop()
                await receiver.stop()

    asyncio.run(scenario())


def test_a_delivery_past_the_retry_period_is_marked_failed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _setup(tmp_path) as (db, box):
            receiver = await Receiver().start()
            receiver.status = 503
            clock = [1000.0]
            deliverer = Deliverer(
                db, box, backoff_seconds=1, retry_seconds=10, clock=lambda: clock[0]
            )
            try:
                added = await webhooks.add(db, box, receiver.url, account_id=ACCOUNT, secret=SECRET)
                async with db.write() as conn:
                    await outbox.emit(conn, _push(), now=clock[0])
                waits = []
                for _ in range(10):
                    assert await deliverer.run_once() == 1
                    history = await webhooks.deliveries(db, ACCOUNT, added["id"])
                    if history[0]["status"] != "pending":
                        break
                    waits.append(history[0]["next_attempt_at"] - clock[0])
                    # Not due before its time, whoever asks.
                    assert await deliverer.run_once() == 0
                    clock[0] = history[0]["next_attempt_at"]
                # Retried after 1, 2 and 4 s; the next wait (8 s) would end past 10 s: failed.
                assert waits == [1, 2, 4]
                assert history[0]["status"] == "failed"
                assert history[0]["attempts"] == 4
                assert history[0]["last_status"] == 503
                assert history[0]["last_error"] == "HTTP 503"
                listed = await webhooks.list_webhooks(db, ACCOUNT)
                assert listed[0]["deliveries"] == {"pending": 0, "delivered": 0, "failed": 1}
                async with db.read() as conn:
                    counters = dict(
                        (
                            await conn.execute(
                                select(
                                    schema.event_counters.c.name, schema.event_counters.c.value
                                ).where(schema.event_counters.c.account_id == ACCOUNT)
                            )
                        ).all()
                    )
                assert counters == {"failed": 1.0}
            finally:
                await deliverer.stop()
                await receiver.stop()

    asyncio.run(scenario())


def test_two_concurrent_deliverers_send_each_delivery_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        url = await _database(tmp_path)
        box = SecretBox(new_key())
        nodes = [Database(url) for _ in range(2)]  # separate pools, as separate nodes have
        receiver = await Receiver().start()
        receiver.delay = 0.01  # keep deliveries in flight while the other node claims
        deliverers = [Deliverer(db, box, batch=4, holder=f"node{i}") for i, db in enumerate(nodes)]
        try:
            await webhooks.add(
                db=nodes[0], box=box, url=receiver.url, account_id=None, secret=SECRET
            )
            events = [_push(f"t{i}") for i in range(30)]
            await _emit(nodes[0], *events)
            await _drain(*deliverers, rounds=100)
            ids = [e["id"] for e in receiver.received]
            assert sorted(ids) == sorted(e["id"] for e in events)
            assert len(ids) == len(set(ids))
            async with nodes[1].read() as conn:
                holders = (
                    await conn.execute(
                        select(func.count()).where(
                            schema.webhook_deliveries.c.status == "delivered"
                        )
                    )
                ).scalar_one()
            assert holders == 30
        finally:
            for deliverer in deliverers:
                await deliverer.stop()
            await receiver.stop()
            for db in nodes:
                await db.dispose()

    asyncio.run(scenario())


def test_purge_keeps_pending_deliveries_and_counts_what_it_removed(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _setup(tmp_path) as (db, box):
            receiver = await Receiver().start()
            deliverer = Deliverer(db, box)
            try:
                await webhooks.add(
                    db, box, "http://127.0.0.1:9/none", account_id=OTHER, secret=SECRET
                )
                await webhooks.add(db, box, receiver.url, account_id=ACCOUNT, secret=SECRET)
                await _emit(db, _push(), _push(account=OTHER))
                await _drain(deliverer, rounds=1)
                report = await outbox.purge(db, retention_seconds=-3600)
                # ACCOUNT's event was delivered; OTHER's still waits for its retry.
                assert report == {"events_purged": 1}
                assert await _count(db, schema.events) == 1
                assert await _count(db, schema.webhook_deliveries) == 1
            finally:
                await deliverer.stop()
                await receiver.stop()

    asyncio.run(scenario())


def test_metrics_count_emitted_delivered_failed_and_latency(tmp_path: Path) -> None:
    from cargobay.events import metrics

    async def scenario() -> list[str]:
        async with _setup(tmp_path) as (db, box):
            receiver = await Receiver().start()
            deliverer = Deliverer(db, box, retry_seconds=0.01)
            try:
                await webhooks.add(db, box, receiver.url, account_id=ACCOUNT, secret=SECRET)
                await webhooks.add(db, box, "http://127.0.0.1:9/", account_id=OTHER, secret=SECRET)
                await _emit(db, _push(), _push("v2"), _push(account=OTHER))
                await _drain(deliverer)
                # Purged events still count as emitted.
                await outbox.purge(db, retention_seconds=-3600)
                return await metrics.lines(db)
            finally:
                await deliverer.stop()
                await receiver.stop()

    text = "\n".join(asyncio.run(scenario()))
    assert f'cargobay_events_emitted_total{{registry_id="{ACCOUNT}"}} 2' in text
    assert f'cargobay_events_emitted_total{{registry_id="{OTHER}"}} 1' in text
    assert (
        f'cargobay_webhook_deliveries_total{{registry_id="{ACCOUNT}",outcome="delivered"}} 2'
    ) in text
    assert f'cargobay_webhook_deliveries_total{{registry_id="{OTHER}",outcome="failed"}} 1' in text
    latency = "cargobay_webhook_delivery_latency_seconds"
    assert f'{latency}_bucket{{registry_id="{ACCOUNT}",le="+Inf"}} 2' in text
    assert f'{latency}_bucket{{registry_id="{ACCOUNT}",le="86400"}} 2' in text
    assert f'{latency}_count{{registry_id="{ACCOUNT}"}} 2' in text
    assert f'{latency}_count{{registry_id="{OTHER}"}} 0' in text
