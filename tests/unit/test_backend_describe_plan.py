"""DescribeImages' one statement (`records.ecrdescribe.described`) reads only the rows it answers,
however many images the repository holds: its plan on this run's backend (SQLite, or
PostgreSQL with CARGOBAY_TEST_DATABASE=postgres) on a repository of 2,000 images. On
PostgreSQL (tables analyzed) the manifest and tag rows every plan node returned or filtered
out (EXPLAIN ANALYZE's rows x loops) stay under a bound that one pass over the repository's
images exceeds; on SQLite every table is reached
through an index (SEARCH), never scanned."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

import pgcluster
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import ecrdescribe
from unit import seedrows

ACCOUNT = "123456789012"
IMAGES = 2000
DIGESTS = [f"sha256:{i:064x}" for i in range(IMAGES)]
# The tables a repository's images fill. (image_archives and image_scans are looked up by
# their primary key too, but on tables this small PostgreSQL rightly reads them whole.)
TABLES = {"manifests", "tags"}
# (shape, values, bound on the image rows PostgreSQL reads): an id lookup reads a few rows per
# id; a page of 100 reads about 100 (200 when every other image is filtered out) per table.
SHAPES: dict[str, tuple[tuple[Any, ...], dict[str, Any], int]] = {
    "ids by tag": (("ids", 0, 1), {"t0": "latest"}, 50),
    "ids by digest and tag": (
        ("ids", 2, 1),
        {"d0": DIGESTS[3], "d1": DIGESTS[1500], "t0": "latest"},
        50,
    ),
    "page ANY": (("page", "ANY", False), {"after": "", "limit": 100}, 1000),
    "page TAGGED": (("page", "TAGGED", False), {"after": DIGESTS[1000], "limit": 100}, 1000),
    "page UNTAGGED": (("page", "UNTAGGED", False), {"after": "", "limit": 100}, 1000),
    "page UNTAGGED ACTIVE": (
        ("page", "UNTAGGED", True),
        {"after": "", "limit": 100, "image_status": "ACTIVE"},
        1000,
    ),
}


async def _seed(db: Database) -> None:
    """Two repositories of 2,000 images each: every other one tagged, a third scanned, a
    fifth archived (the other repository doubles every table, as a busy registry would)."""
    async with db.write() as conn:
        for rid, name in ((1, "team/app"), (2, "team/other")):
            await conn.execute(seedrows.repository(rid, ACCOUNT, name))
        for rid in (1, 2):
            image = [{"repository_id": rid, "digest": d} for d in DIGESTS]
            await conn.execute(
                schema.manifests.insert(),
                [
                    {**row, "media_type": "x", "size": 2, "image_size": 1, "content": b"{}"}
                    | {"pushed_at": float(i)}
                    for i, row in enumerate(image)
                ],
            )
            tagged = [{**row, "name": f"t{i}", "updated_at": 0} for i, row in enumerate(image)]
            tagged = [*tagged[::2], {**image[7], "name": "latest", "updated_at": 0}]
            await conn.execute(schema.tags.insert(), tagged)
            scans = [{**row, "status": "COMPLETE", "updated_at": 0} for row in image[::3]]
            await conn.execute(schema.image_scans.insert(), scans)
            archived = [{**row, "status": "ARCHIVED", "archived_at": 1.0} for row in image[::5]]
            await conn.execute(schema.image_archives.insert(), archived)


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[asyncio.AbstractEventLoop, Database]]:
    """The seeded database and the one event loop its connections belong to."""
    loop = asyncio.new_event_loop()
    url = loop.run_until_complete(pgcluster.migrated_database(tmp_path_factory.mktemp("plan")))
    db = Database(url)
    loop.run_until_complete(_seed(db))
    if pgcluster.backend() == "postgres":
        loop.run_until_complete(_analyze(db))
    yield loop, db
    loop.run_until_complete(db.dispose())
    loop.close()


async def _analyze(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(text("ANALYZE"))


def _sql(conn: Any, shape: tuple[Any, ...], values: dict[str, Any]) -> str:
    params = {"registry_id": ACCOUNT, "region": "", "name": "team/app"}
    params |= {"caller_account": ACCOUNT, "caller": "dev", "caller_key": "AKIA"} | values
    statement = ecrdescribe._described((*shape, True)).params(**params)
    compiled = statement.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


async def _plan(db: Database, shape: tuple[Any, ...], values: dict[str, Any]) -> Any:
    async with db.read_now() as conn:
        sql = _sql(conn, shape, values)
        if conn.dialect.name == "postgresql":
            found = await conn.execute(text("EXPLAIN (ANALYZE, FORMAT JSON) " + sql))
            plan = found.scalar()
            return json.loads(plan) if isinstance(plan, str) else plan
        return [row[-1] for row in await conn.execute(text("EXPLAIN QUERY PLAN " + sql))]


@pytest.mark.parametrize("label", list(SHAPES))
def test_describe_reads_only_the_rows_it_answers(
    seeded: tuple[asyncio.AbstractEventLoop, Database], label: str
) -> None:
    shape, values, bound = SHAPES[label]
    loop, db = seeded
    plan = loop.run_until_complete(_plan(db, shape, values))
    if pgcluster.backend() == "postgres":
        # The rows each access to an image table returned or filtered out, over all its loops.
        read = [
            (
                node["Relation Name"],
                node["Actual Loops"] * (node["Actual Rows"] + node.get("Rows Removed by Filter", 0))
                + node.get("Rows Removed by Join Filter", 0),
            )
            for node in _nodes(plan[0]["Plan"])
            if node.get("Relation Name") in TABLES
        ]
        assert read and sum(rows for _, rows in read) < bound < IMAGES, read
    else:
        scans = [step for step in plan if step.startswith("SCAN") and "described" not in step]
        assert not [step for step in scans if "chosen" not in step], plan
        assert any("manifests" in step and "SEARCH" in step for step in plan), plan
