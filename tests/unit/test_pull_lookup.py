"""The pull lookup's one statement (`metadata.records.pulls`) against a real SQLite file: the
same answers on the driver-direct path (`metadata.hot`) as through SQLAlchemy, pull-through
coverage exactly as `Rule.covers` decides it, the access-key revocation check, and the
caller's identity policies joined into one column."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine

from cargobay.iam import policyscope
from cargobay.metadata import roundtrips, schema
from cargobay.metadata.db import Database
from cargobay.metadata.records import pulls
from cargobay.pullthrough.rules import ROOT, Rule
from unit import seedrows

ACCOUNT = "123456789012"
DIGEST = "sha256:" + "a" * 64
CALLER = (ACCOUNT, "dev", "AKIADEVDEVDEVDEVDEV0")


@pytest.fixture
def db(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'meta.db'}"
    engine = create_engine(url)
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for repo_id, name in ((1, "hub/library/nginx"), (2, "team/app"), (3, "hubby/x")):
            conn.execute(
                seedrows.repository(
                    repo_id, ACCOUNT, name, policy_text='{"repo": 1}' if repo_id == 2 else None
                )
            )
            conn.execute(
                schema.manifests.insert().values(
                    repository_id=repo_id,
                    digest=DIGEST,
                    media_type="application/vnd.oci.image.manifest.v1+json",
                    size=2,
                    image_size=2,
                    content=b"{}",
                    pushed_at=0,
                )
            )
            conn.execute(
                schema.tags.insert().values(
                    repository_id=repo_id, name="v1", digest=DIGEST, updated_at=0
                )
            )
        conn.execute(
            schema.pull_through_cache_rules.insert().values(
                registry_id=ACCOUNT,
                prefix="hub",
                upstream_url="registry-1.docker.io",
                upstream_registry="docker-hub",
                created_at=0,
                updated_at=0,
            )
        )
        user_id = conn.execute(
            schema.users.insert().values(
                account_id=ACCOUNT, name="dev", created_at=0, tags='{"team": "a"}'
            )
        ).inserted_primary_key[0]
        for name, document in (("one", '{"A": 1}'), ("two", '{"B": 2}')):
            conn.execute(
                schema.user_policies.insert().values(user_id=user_id, name=name, document=document)
            )
        conn.execute(
            schema.access_keys.insert().values(
                id=CALLER[2], user_id=user_id, secret="sealed", status="Active", created_at=0
            )
        )
    engine.dispose()
    database = Database(url)
    yield database
    asyncio.run(database.dispose())


def _lookup(db: Database, name: str, reference: str = "v1", **kw):
    kw.setdefault("with_identity", False)
    return asyncio.run(
        pulls.lookup(
            db,
            ACCOUNT,
            name,
            reference,
            by_digest=reference.startswith("sha256:"),
            caller=CALLER,
            **kw,
        )
    )


def test_one_statement_returns_the_manifest_and_the_repository_policy(db: Database) -> None:
    async def counted():
        with roundtrips.counting() as count:
            row = await pulls.lookup(
                db, ACCOUNT, "team/app", "v1", by_digest=False, caller=CALLER, with_identity=False
            )
        return row, count.value

    row, statements = asyncio.run(counted())
    assert statements == 1
    assert (row.digest, row.content, row.repository_policy) == (DIGEST, b"{}", '{"repo": 1}')
    assert row.caller_admin == 0  # Active, and not an administrator
    assert _lookup(db, "team/app", DIGEST).digest == DIGEST
    assert _lookup(db, "team/app", "v2").digest is None  # the repository, without the image
    assert _lookup(db, "team/none") is None


def test_the_driver_path_answers_as_sqlalchemy_does(db: Database) -> None:
    statement = pulls._STATEMENTS[(False, True)]
    params = {
        "registry_id": ACCOUNT,
        "region": "",
        "name": "team/app",
        "reference": "v1",
        "caller_account": CALLER[0],
        "caller": CALLER[1],
        "caller_key": CALLER[2],
    }
    fast = asyncio.run(statement.first(db, params))

    async def slow():
        async with db.read_now() as conn:
            return (await conn.execute(statement.statement, params)).first()

    assert tuple(fast) == tuple(asyncio.run(slow()))
    assert fast._fields == tuple(asyncio.run(slow())._mapping.keys())


@pytest.mark.parametrize("name", ["hub/library/nginx", "team/app", "hubby/x"])
def test_pull_through_coverage_is_rule_covers(db: Database, name: str) -> None:
    expected = Rule.covers(SimpleNamespace(prefix="hub"), name)  # type: ignore[arg-type]
    assert bool(_lookup(db, name).cached) == expected


def test_a_revoked_key_reads_as_null(db: Database) -> None:
    assert _lookup(db, "team/app").caller_admin is not None
    engine = create_engine(db.url.replace("+aiosqlite", ""))
    with engine.begin() as conn:
        conn.execute(schema.access_keys.update().values(status="Inactive"))
    engine.dispose()
    assert _lookup(db, "team/app").caller_admin is None


def test_the_constants_are_the_services_own() -> None:
    """Records import nothing above the metadata layer, so they repeat two names."""
    assert pulls.POLICY_SCOPE_SETTING == policyscope.SETTING
    assert pulls._ROOT_PREFIX == ROOT


def test_identity_policies_come_joined(db: Database) -> None:
    row = _lookup(db, "team/app", with_identity=True)
    assert sorted(row.caller_policies.split(pulls.POLICY_SEPARATOR)) == ['{"A": 1}', '{"B": 2}']
    assert row.caller_tags == '{"team": "a"}'
