"""DescribeImages' one statement (`metadata.records.ecrreads.described`) against a real SQLite
file: for every filter, page size and image id list, the same images, tags, archive states and
scans as the queries it replaced (`records.images.describe`, `records.tags.on_each` and the
scan summaries), on the driver-direct path (`metadata.hot`) as through SQLAlchemy."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from cargobay.ecr import describing
from cargobay.metadata import roundtrips, schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import ecrdescribe, ecrreads, images, tags
from cargobay.registry.ecrreads import DescribeQuery
from unit import seedrows

ACCOUNT = "123456789012"
CALLER = (ACCOUNT, "dev", "AKIADEVDEVDEVDEVDEV0")
DIGESTS = [f"sha256:{i:x}" + "0" * 63 for i in range(8)]
# Tags of each image (none on 2, 5 and 7), out of order on purpose.
TAGGED = {0: ["b", "a"], 1: ["c"], 3: ["z", "m", "d"], 4: ["e"], 6: ["f"]}


@pytest.fixture
def db(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for repo_id, name in ((1, "team/app"), (2, "team/other")):
            conn.execute(seedrows.repository(repo_id, ACCOUNT, name))
        for i, digest in enumerate(DIGESTS):
            conn.execute(
                schema.manifests.insert().values(
                    repository_id=1,
                    digest=digest,
                    media_type="application/vnd.oci.image.manifest.v1+json",
                    artifact_type="application/x.sig" if i == 5 else None,
                    subject_digest=DIGESTS[0] if i == 5 else None,
                    size=2,
                    image_size=100 + i,
                    content=b"{}",
                    pushed_at=1000.0 + i,
                    last_pulled_at=2000.5 if i % 3 == 0 else None,
                )
            )
            for tag in TAGGED.get(i, []):
                conn.execute(
                    schema.tags.insert().values(
                        repository_id=1, name=tag, digest=digest, updated_at=0
                    )
                )
        # The other repository holds the same digest under another tag: never mixed in.
        conn.execute(
            schema.manifests.insert().values(
                repository_id=2,
                digest=DIGESTS[0],
                media_type="application/vnd.oci.image.manifest.v1+json",
                size=2,
                image_size=1,
                content=b"{}",
                pushed_at=0,
            )
        )
        conn.execute(
            schema.tags.insert().values(repository_id=2, name="x", digest=DIGESTS[0], updated_at=0)
        )
        for i, status in ((2, "ARCHIVED"), (3, "ACTIVE")):
            conn.execute(
                schema.image_archives.insert().values(
                    repository_id=1,
                    digest=DIGESTS[i],
                    status=status,
                    archived_at=3000.0,
                    activated_at=3500.0 if status == "ACTIVE" else None,
                )
            )
        for i, status, counts in ((0, "COMPLETE", '{"HIGH": 2}'), (4, "FAILED", None)):
            conn.execute(
                schema.image_scans.insert().values(
                    repository_id=1,
                    digest=DIGESTS[i],
                    status=status,
                    description="it broke" if status == "FAILED" else None,
                    severity_counts=counts,
                    finding_count=2,
                    completed_at=4000.0 if counts else None,
                    source_updated_at=3900.0 if counts else None,
                    updated_at=4000.0,
                )
            )
    engine.dispose()
    database = Database(url)
    yield database
    asyncio.run(database.dispose())


def _described(db: Database, query: DescribeQuery, name: str = "team/app") -> list[Any]:
    shape, values = query.statement()
    call = ecrreads.Head(ACCOUNT, name, "", CALLER, True)
    return asyncio.run(ecrreads.described(db, call, shape, values))


def _replaced(db: Database, query: DescribeQuery) -> list[tuple[Any, ...]]:
    """What the three replaced queries answered: (digest, size, status, sorted tags, scan)."""

    async def read() -> list[tuple[Any, ...]]:
        async with db.read_now() as conn:
            rows = await images.describe(
                conn,
                1,
                tag_status=query.tag_status,
                after=query.after,
                limit=query.limit,
                image_status=query.image_status,
            )
            on = await tags.on_each(conn, 1, [row.digest for row in rows])
            s = schema.image_scans
            scans = {
                row.digest: (row.status, row.severity_counts)
                for row in await conn.execute(select(s).where(s.c.repository_id == 1))
            }
        return [
            (
                r.digest,
                r.image_size,
                r.status,
                r.archived_at,
                r.activated_at,
                r.last_pulled_at,
                on[r.digest],
                scans.get(r.digest, (None, None)),
            )
            for r in rows
        ]

    return asyncio.run(read())


def _mine(rows: list[Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r.digest,
            r.image_size,
            r.status,
            r.archived_at,
            r.activated_at,
            r.last_pulled_at,
            sorted(r.tags.split(",")) if r.tags else [],
            (r.scan_status, r.severity_counts),
        )
        for r in rows
        if r.digest is not None
    ]


@pytest.mark.parametrize(
    ("tag_status", "image_status"),
    list(itertools.product(("ANY", "TAGGED", "UNTAGGED"), ("ANY", "ACTIVE", "ARCHIVED"))),
)
def test_every_page_answers_as_the_replaced_queries(db, tag_status, image_status) -> None:
    for limit in (1, 2, 3, 100):
        after = ""
        while True:
            query = DescribeQuery(tag_status, image_status, after, limit)
            with roundtrips.counting() as count:
                rows = _described(db, query)
            assert count.value == 1
            mine = _mine(rows)
            assert mine == _replaced(db, query)
            if len(mine) < limit:
                break
            after = mine[-1][0]


def test_a_repository_without_images_is_one_row_and_a_missing_one_none(db) -> None:
    empty = _described(db, DescribeQuery("ANY", "ANY", DIGESTS[-1], 10))
    assert [row.digest for row in empty] == [None]
    assert empty[0].repo_name == "team/app" and empty[0].caller_admin is None  # no such key
    assert _described(db, DescribeQuery(), "team/none") == []


def test_image_ids_read_tags_and_digests_in_one_statement(db) -> None:
    query = DescribeQuery(tags=("a", "e", "missing"), digests=(DIGESTS[2], DIGESTS[7]))
    rows = _described(db, query)
    assert [row.digest for row in rows] == [DIGESTS[i] for i in (0, 2, 4, 7)]
    only_tags = _described(db, DescribeQuery(tags=("x", "d")))
    assert [row.digest for row in only_tags] == [DIGESTS[3]]  # "x" is the other repository's
    only_digests = _described(db, DescribeQuery(digests=(DIGESTS[1],)))
    assert [row.digest for row in only_digests] == [DIGESTS[1]]


def test_the_driver_path_answers_as_sqlalchemy_does(db) -> None:
    query = DescribeQuery("TAGGED", "ANY", "", 5)
    shape, values = query.statement()
    fast = _described(db, query)
    statement = ecrdescribe._DESCRIBED[(*shape, True)]
    params = {
        "registry_id": ACCOUNT,
        "region": "",
        "name": "team/app",
        "caller_account": CALLER[0],
        "caller": CALLER[1],
        "caller_key": CALLER[2],
        **values,
    }

    async def slow():
        async with db.read_now() as conn:
            return (await conn.execute(statement.statement, params)).all()

    assert [tuple(row) for row in fast] == [tuple(row) for row in asyncio.run(slow())]


def test_details_are_ecr_image_details(db) -> None:
    query = DescribeQuery(image_status="ACTIVE", limit=100)
    rows = [r for r in _described(db, query) if r.digest is not None]
    repo = type("Repo", (), {"registry_id": ACCOUNT, "name": "team/app"})()
    details = {d["imageDigest"]: d for d in describing.details(repo, rows)}  # type: ignore[arg-type]
    first = details[DIGESTS[0]]
    assert first["imageTags"] == ["a", "b"] and first["imageSizeInBytes"] == 100
    assert first["imageScanStatus"] == {"status": "COMPLETE"}
    assert first["imageScanFindingsSummary"] == {
        "findingSeverityCounts": {"HIGH": 2},
        "imageScanCompletedAt": 4000.0,
        "vulnerabilitySourceUpdatedAt": 3900.0,
    }
    assert first["lastRecordedPullTime"] == 2000.5
    assert details[DIGESTS[4]]["imageScanStatus"] == {"status": "FAILED", "description": "it broke"}
    assert "imageScanFindingsSummary" not in details[DIGESTS[4]]
    assert details[DIGESTS[3]]["lastActivatedAt"] == 3500.0
    assert details[DIGESTS[5]]["artifactMediaType"] == "application/x.sig"
    assert details[DIGESTS[5]]["subjectManifestDigest"] == DIGESTS[0]
    assert "imageTags" not in details[DIGESTS[5]] and "imageScanStatus" not in details[DIGESTS[5]]
    assert DIGESTS[2] not in details  # archived: a page lists ACTIVE images unless asked
