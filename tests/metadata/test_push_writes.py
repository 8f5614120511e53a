"""The push transaction's statements (`metadata.hotwrite`: the blob check with the hooks'
settings, the manifest, its references, the tag and the event, run on the sqlite3 driver in a
SQLite file's write transaction) store exactly what SQLAlchemy's execution of the same
statements stores, count the same statements, and roll back with a failed push, on every
backend (on PostgreSQL both sides are SQLAlchemy's)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import bindparam, select

from cargobay.errors import ImageAlreadyExists, ImageTagAlreadyExists
from cargobay.events import hooks as event_hooks
from cargobay.metadata import roundtrips, schema
from cargobay.metadata.db import Database
from cargobay.metadata.hotwrite import HotSelect
from cargobay.metadata.records import blobs, repositories
from cargobay.oci.manifest import OCI_INDEX, OCI_MANIFEST
from cargobay.registry.hooks import Hooks
from cargobay.registry.manifests import ManifestService
from cargobay.registry.repositories import Repository
from cargobay.scans.service import ScanService
from cargobay.signing.configuration import SigningService
from metadata.conftest import Store

pytestmark = pytest.mark.backend

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _image(n: int) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(CONFIG),
                "size": len(CONFIG),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(LAYER),
                    "size": len(LAYER),
                }
            ],
            "annotations": {"n": str(n)},
        }
    ).encode()


def _index(children: list[bytes]) -> bytes:
    manifests = [
        {"mediaType": OCI_MANIFEST, "digest": _digest(c), "size": len(c)} for c in children
    ]
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}).encode()


class _NoDriver:
    """A write transaction's connection without its driver: SQLAlchemy runs every statement."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def dialect(self) -> Any:
        return self._conn.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> Any:
        return await self._conn.execute(statement, parameters)

    async def scalar(self, statement: Any, parameters: Any = None) -> Any:
        return await self._conn.scalar(statement, parameters)


class _SqlAlchemyOnly:
    """`db` whose write transactions offer no driver, one push a transaction (as on
    PostgreSQL: no `registry.pushgroup`, whose savepoints would be SQLAlchemy's too)."""

    writes_in_turn = False

    def __init__(self, db: Database) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_NoDriver]:
        async with self._db.write() as conn:
            yield _NoDriver(conn)


def _service(db: Any) -> ManifestService:
    """The push path as `Services.build` wires it: every hook that reads settings, events."""
    hooks = Hooks()
    scans = ScanService(db)
    hooks.on_push(scans.on_push, reads=scans.push_reads())
    signing = SigningService(db)
    hooks.on_push(signing.on_push, reads=signing.push_reads())
    event_hooks.register(hooks, "us-east-1")
    return ManifestService(db, 4 * 1024 * 1024, hooks)


async def _repo(db: Database, registry_id: str, name: str, mutability: str) -> Repository:
    async with db.write() as conn:
        assert await repositories.insert(conn, registry_id, name)
        repository_id = await repositories.id_of(conn, registry_id, name)
        assert repository_id is not None
        for data in (CONFIG, LAYER):
            await blobs.link(conn, repository_id, _digest(data), len(data))
    return Repository(repository_id, registry_id, name, 0.0, tag_mutability=mutability)


async def _pushes(service: ManifestService, repo: Repository) -> list[Any]:
    """A fixed series of pushes (new images, a new tag, a moved tag, a re-push, an index, the
    refusals) and what each gave."""
    outcomes: list[Any] = []
    calls: list[tuple[bytes, str | None, bool]] = [
        (_image(1), "one", False),
        (_image(2), "two", True),
        (_image(1), "also-one", True),  # no new image: a new tag only
        (_image(3), "one", False),  # moves "one" (refused when tags are immutable)
        (_image(2), "two", True),  # ImageAlreadyExists
        (_image(2), None, False),  # a re-push by digest
        (_index([_image(1), _image(2)]), "multi", False),
    ]
    for payload, tag, refuse in calls:
        try:
            put = await service.put_image(repo, payload, None, tag=tag, refuse_existing=refuse)
            outcomes.append((put.digest, put.created, put.media_type))
        except (ImageAlreadyExists, ImageTagAlreadyExists) as exc:
            outcomes.append(type(exc).__name__)
    return outcomes


async def _stored(db: Database, repo: Repository) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the pushes left, without what differs by repository or time."""
    m, mr, t, e = schema.manifests, schema.manifest_references, schema.tags, schema.events
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.read() as conn:
        rows = (await conn.execute(select(m).where(m.c.repository_id == repo.id))).all()
        out["manifests"] = sorted(
            (*(v for k, v in row._mapping.items() if k not in ("repository_id", "pushed_at")),)
            for row in rows
        )
        assert all(isinstance(row.pushed_at, float) for row in rows)
        rows = await conn.execute(select(mr).where(mr.c.repository_id == repo.id))
        out["references"] = sorted(
            (row.manifest_digest, row.target_digest, row.kind) for row in rows
        )
        rows = await conn.execute(select(t).where(t.c.repository_id == repo.id))
        out["tags"] = sorted((row.name, row.digest) for row in rows)
        rows = (await conn.execute(select(e).where(e.c.account_id == repo.registry_id))).all()
    events = []
    for row in rows:
        body = json.loads(row.body)
        if body["detail"].get("repository-name") != repo.name:
            continue
        assert body["id"] == row.id and row.detail_type == body["detail-type"]
        detail = {k: v for k, v in body["detail"].items() if k != "repository-name"}
        events.append((row.detail_type, body["account"], body["region"], json.dumps(detail)))
    out["events"] = sorted(events)
    return out


@pytest.mark.parametrize("mutability", ["MUTABLE", "IMMUTABLE"])
def test_the_driver_path_stores_what_sqlalchemy_stores(store: Store, mutability: str) -> None:
    async def scenario(db: Database, registry_id: str) -> None:
        fast_repo = await _repo(db, registry_id, "push/fast", mutability)
        plain_repo = await _repo(db, registry_id, "push/plain", mutability)
        if store.backend != "postgres":
            async with db.write() as conn:  # the SQLite file's writer offers its driver
                assert callable(getattr(conn, "driver", None))
        with roundtrips.counting() as count:
            fast = await _pushes(_service(db), fast_repo)
        with roundtrips.counting() as plain_count:
            plain = await _pushes(_service(_SqlAlchemyOnly(db)), plain_repo)
        assert fast == plain
        assert count.value == plain_count.value > 0  # the driver's statements count too
        stored = await _stored(db, fast_repo)
        assert stored == await _stored(db, plain_repo)
        # Three images and the index (the third image refused with its immutable tag).
        assert len(stored["manifests"]) == (4 if mutability == "MUTABLE" else 3)
        assert ("multi", _digest(_index([_image(1), _image(2)]))) in stored["tags"]
        kinds = {kind for _, _, kind in stored["references"]}
        assert kinds == {"blob", "manifest"}
        assert len(stored["events"]) == (6 if mutability == "MUTABLE" else 5)
        if mutability == "IMMUTABLE":
            assert fast[3] == "ImageTagAlreadyExists"
            assert ("one", _digest(_image(1))) in stored["tags"]
        else:
            assert ("one", _digest(_image(3))) in stored["tags"]
        assert fast[4] == "ImageAlreadyExists"

    store.run(scenario)


def test_a_refused_push_leaves_nothing_of_its_driver_writes(store: Store) -> None:
    """The manifest is inserted (on the driver) before the immutable tag is refused: the
    refusal rolls the insert back with the transaction."""

    async def scenario(db: Database, registry_id: str) -> None:
        repo = await _repo(db, registry_id, "push/refused", "IMMUTABLE")
        service = _service(db)
        await service.put_image(repo, _image(1), None, tag="v1")
        with pytest.raises(ImageTagAlreadyExists):
            await service.put_image(repo, _image(2), None, tag="v1")
        stored = await _stored(db, repo)
        assert [row[0] for row in stored["manifests"]] == [_digest(_image(1))]
        assert {d for d, _, _ in stored["references"]} == {_digest(_image(1))}
        assert len(stored["events"]) == 1

    store.run(scenario)


def test_a_hot_select_spreads_its_list_as_sqlalchemy_expands_it(store: Store) -> None:
    """`HotSelect`'s one expanding parameter, spread into placeholders on the driver, finds
    what SQLAlchemy's expansion finds, for one, several or no items."""
    rb = schema.repository_blobs
    statement = (
        select(rb.c.digest, rb.c.repository_id)
        .where(
            rb.c.repository_id == bindparam("repository_id"),
            rb.c.digest.in_(bindparam("digests", expanding=True)),
        )
        .order_by(rb.c.digest)
    )
    hot = HotSelect(statement, "digests")
    absent = _digest(b"absent")

    async def scenario(db: Database, registry_id: str) -> None:
        repo = await _repo(db, registry_id, "push/select", "MUTABLE")
        for digests in ([_digest(CONFIG)], [_digest(CONFIG), absent, _digest(LAYER)], []):
            params = {"repository_id": repo.id, "digests": digests}
            async with db.write() as conn:
                with roundtrips.counting() as count:
                    found = [tuple(row) for row in await hot.all(conn, params)]
                assert count.value == 1
                expected = [tuple(row) for row in (await conn.execute(statement, params)).all()]
            assert found == expected
            assert [row[0] for row in found] == sorted(d for d in digests if d != absent)

    store.run(scenario)
