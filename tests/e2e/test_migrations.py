"""Schema migrations on the selected metadata backend (SQLite, or PostgreSQL with
CARGOBAY_TEST_DATABASE=postgres): a database made by the first revision upgrades to head with its
data, `serve` refuses an out-of-date or too-new schema, pre-migration databases are adopted, and
head matches schema.py exactly."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from cargobay.metadata import migrations, schema
from cargobay.metadata.db import async_url
from e2e.ecrhelp import client
from server import Server

FIRST = "0001"
HEAD = migrations.head()


def cargobay(server: Server, *args: str, drop_env: tuple[str, ...] = ()):
    env = {k: v for k, v in server.process_env.items() if k not in drop_env}
    return subprocess.run(
        [sys.executable, "-m", "cargobay", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def db_args(server: Server) -> list[str]:
    return ["--data-dir", str(server.data_dir)]


def sql(server: Server, *statements: str, params: dict | None = None) -> list[list]:
    """Run statements in one transaction on the server's database; rows of the last."""

    async def run() -> list[list]:
        engine = create_async_engine(async_url(server.settings.database_url))
        try:
            async with engine.begin() as conn:
                rows: list[list] = []
                for statement in statements:
                    result = await conn.execute(text(statement), params or {})
                    rows = [list(r) for r in result] if result.returns_rows else []
                return rows
        finally:
            await engine.dispose()

    return asyncio.run(run())


def serve_refusal(server: Server, *args: str, drop_env: tuple[str, ...] = ()) -> str:
    """Start `cargobay serve`, expect it to exit at once; its stderr."""
    proc = cargobay(
        server, "serve", *db_args(server), "--port", str(server.port), *args, drop_env=drop_env
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return proc.stderr


@pytest.fixture
def server(tmp_path: Path):
    srv = Server(tmp_path / "data", workers=1)
    srv.data_dir.mkdir(parents=True)
    yield srv
    srv.discard()


def _seed_first_revision(server: Server) -> tuple[str, bytes]:
    """A repository with a tagged manifest, written with the first revision's tables."""
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": "sha256:" + "0" * 64,
                "size": 2,
            },
            "layers": [],
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    now = time.time()
    sql(
        server,
        "INSERT INTO repositories (registry_id, name, created_at, tag_mutability, scan_on_push,"
        " encryption_type) VALUES ('000000000000', 'migrated/app', :now, 'MUTABLE', false,"
        " 'AES256')",
        "INSERT INTO manifests (repository_id, digest, media_type, size, image_size, content,"
        " pushed_at) SELECT id, :digest, 'application/vnd.oci.image.manifest.v1+json', :size, 2,"
        " :content, :now FROM repositories WHERE name = 'migrated/app'",
        "INSERT INTO tags (repository_id, name, digest, updated_at)"
        " SELECT id, 'v1', :digest, :now FROM repositories WHERE name = 'migrated/app'",
        params={"now": now, "digest": digest, "size": len(manifest), "content": manifest},
    )
    return digest, manifest


def test_first_revision_upgrades_to_head_and_serve_refuses_until_then(server: Server) -> None:
    made = cargobay(server, "db", "upgrade", *db_args(server), "--revision", FIRST)
    assert made.returncode == 0, made.stderr
    assert f"to {FIRST}" in made.stdout
    assert sql(server, "SELECT version FROM schema_info") == [[1]]
    digest, manifest = _seed_first_revision(server)

    current = cargobay(server, "db", "current", *db_args(server))
    assert current.returncode == 1
    needs = f"{FIRST}; this cargobay needs {HEAD}: run `cargobay db upgrade`"
    assert current.stdout.strip() == needs

    # Out of date: refused, with one line that says what to do, and nothing is changed.
    refusal = serve_refusal(server, "--no-upgrade-db")
    assert refusal.count("\n") == 1, refusal
    assert refusal.startswith(
        f"cargobay: database schema is at revision {FIRST}, this cargobay needs {HEAD}: "
        "run `cargobay db upgrade`"
    )
    assert sql(server, "SELECT version_num FROM alembic_version") == [[FIRST]]

    upgraded = cargobay(server, "db", "upgrade", *db_args(server))
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.strip() == f"database schema upgraded from revision {FIRST} to {HEAD}"
    again = cargobay(server, "db", "upgrade", *db_args(server))
    assert again.stdout.strip() == f"database schema is at revision {HEAD}; nothing to do"
    current = cargobay(server, "db", "current", *db_args(server))
    assert (current.returncode, current.stdout.strip()) == (0, f"{HEAD} (head)")

    # What was written at the first revision is served at head.
    server.extra_args = ["--no-upgrade-db"]
    server.start()
    s = server.session()
    assert "migrated/app" in s.get(f"{server.url}/v2/_catalog").json()["repositories"]
    got = s.get(
        f"{server.url}/v2/migrated/app/manifests/v1",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert got.status_code == 200
    assert (got.headers["Docker-Content-Digest"], got.content) == (digest, manifest)
    assert s.get(f"{server.url}/readyz").status_code == 200


def test_postgresql_is_not_upgraded_unless_asked(server: Server) -> None:
    if server.settings.database_url.startswith("sqlite"):
        # The embedded default upgrades on start: `cargobay serve` on a fresh machine just works.
        server.start()
        assert cargobay(server, "db", "current", *db_args(server)).returncode == 0
        return
    refusal = serve_refusal(server, drop_env=("CARGOBAY_AUTO_UPGRADE",))
    assert "database schema is at revision none (empty database)" in refusal
    assert f"this cargobay needs {HEAD}" in refusal


def test_serve_upgrades_when_told(server: Server) -> None:
    assert cargobay(server, "db", "upgrade", *db_args(server), "--revision", FIRST).returncode == 0
    server.extra_args = ["--upgrade-db"]
    server.start()
    assert server.session().get(f"{server.url}/readyz").status_code == 200
    server.stop()
    assert sql(server, "SELECT version_num FROM alembic_version") == [[HEAD]]


def test_a_database_from_before_migrations_is_adopted(server: Server) -> None:
    """`metadata.create_all` databases had the first revision's tables and no alembic_version."""
    assert cargobay(server, "db", "upgrade", *db_args(server), "--revision", FIRST).returncode == 0
    _seed_first_revision(server)
    sql(server, "DROP TABLE alembic_version")
    current = cargobay(server, "db", "current", *db_args(server))
    assert current.stdout.startswith(f"{FIRST}; this cargobay needs {HEAD}")
    upgraded = cargobay(server, "db", "upgrade", *db_args(server))
    assert upgraded.returncode == 0, upgraded.stderr
    assert sql(server, "SELECT version_num FROM alembic_version") == [[HEAD]]
    server.start()
    catalog = server.session().get(f"{server.url}/v2/_catalog").json()
    assert "migrated/app" in catalog["repositories"]


def test_a_schema_from_a_newer_cargobay_is_refused(server: Server) -> None:
    assert cargobay(server, "db", "upgrade", *db_args(server)).returncode == 0
    sql(server, "UPDATE alembic_version SET version_num = '9999'")
    refusal = serve_refusal(server, "--upgrade-db")
    assert "database schema is at revision 9999, which this cargobay does not know" in refusal
    upgrade = cargobay(server, "db", "upgrade", *db_args(server))
    assert upgrade.returncode == 1 and "does not know" in upgrade.stderr
    assert cargobay(server, "db", "current", *db_args(server)).returncode == 1


def test_concurrent_upgrades_run_once(server: Server) -> None:
    """Nodes that start together upgrade one at a time; every one ends at head."""
    env = server.process_env
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "cargobay", "db", "upgrade", *db_args(server)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    upgraded = [out for out, _ in outputs if "upgraded" in out]
    assert len(upgraded) == 1, outputs
    assert sql(server, "SELECT version_num FROM alembic_version") == [[HEAD]]


def test_nodes_starting_together_on_a_fresh_database(tmp_path: Path) -> None:
    """Three nodes on one new database: one creates the schema and the administrator, the others
    wait for it and find them; all serve the configured key."""
    first = Server(tmp_path / "node0", workers=1)
    shared = {
        "CARGOBAY_DATABASE": first.settings.database_url,
        "CARGOBAY_AUTO_UPGRADE": "true",
        "CARGOBAY_SECRET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "CARGOBAY_ADMIN_ACCESS_KEY_ID": "AKIAMIGRATIONTEST001",
        "CARGOBAY_ADMIN_SECRET_ACCESS_KEY": "migration-test-secret",
    }
    (tmp_path / "node0").mkdir()
    nodes = [Server(tmp_path / f"node{i}", workers=1, env=shared) for i in range(3)]
    for node in nodes:
        node.backend_env = {}  # all on the shared database above
    try:
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda node: node.start(), nodes))
        for node in nodes:
            auth = ("AKIAMIGRATIONTEST001", "migration-test-secret")
            assert requests.get(f"{node.url}/v2/", auth=auth, timeout=10).status_code == 200
            assert requests.get(f"{node.url}/readyz", timeout=10).status_code == 200
    finally:
        for node in nodes:
            node.stop()
        first.discard()


def test_head_matches_schema_py(server: Server) -> None:
    """The migrations and schema.py describe the same tables, columns, keys and indexes (every
    revision replayed: an empty database brought straight to head is built from schema.py)."""
    for revision in (FIRST, HEAD):
        made = cargobay(server, "db", "upgrade", *db_args(server), "--revision", revision)
        assert made.returncode == 0, made.stderr

    async def diff() -> list:
        engine = create_async_engine(async_url(server.settings.database_url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda sync: compare_metadata(
                        MigrationContext.configure(sync, opts={"compare_type": True}),
                        schema.metadata,
                    )
                )
        finally:
            await engine.dispose()

    differences = [d for d in asyncio.run(diff()) if "alembic_version" not in str(d)]
    assert differences == [], "schema.py and the migrations differ; add a revision"


def test_names_sort_in_byte_order_on_postgresql(server: Server) -> None:
    if server.settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite compares in byte order by default")
    assert cargobay(server, "db", "upgrade", *db_args(server)).returncode == 0
    rows = sql(
        server,
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'public' AND collation_name = 'C'"
        " ORDER BY table_name, column_name",
    )
    assert ["repositories", "name"] in rows
    assert ["tags", "name"] in rows
    assert ["manifests", "digest"] in rows


def test_the_schema_revision_constant_is_the_migrations_head() -> None:
    from cargobay.metadata import migrations, schema

    assert migrations.head() == schema.SCHEMA_REVISION


def test_audit_records_take_their_region_from_their_json(server: Server) -> None:
    """Migration 0028 fills the new region column of existing audit records from the
    `awsRegion` each record's JSON carries (LookupEvents filters on the column)."""
    import importlib

    before = importlib.import_module(
        "cargobay.metadata.migrations.versions.0028_audit_regions"
    ).down_revision
    made = cargobay(server, "db", "upgrade", *db_args(server), "--revision", before)
    assert made.returncode == 0, made.stderr
    rows = [("e-1", {"awsRegion": "eu-west-1"}), ("e-2", {"awsRegion": "us-east-1"}), ("e-3", {})]
    for event_id, record in rows:
        sql(
            server,
            "INSERT INTO audit_records (event_id, account_id, event_time, event_source,"
            " event_name, read_only, record) VALUES (:id, '000000000000', 1.0,"
            " 'ecr.amazonaws.com', 'PutImage', false, :record)",
            params={"id": event_id, "record": json.dumps({"eventName": "PutImage", **record})},
        )
    upgraded = cargobay(server, "db", "upgrade", *db_args(server))
    assert upgraded.returncode == 0, upgraded.stderr
    regions = sql(server, "SELECT event_id, region FROM audit_records ORDER BY event_id")
    assert regions == [["e-1", "eu-west-1"], ["e-2", "us-east-1"], ["e-3", ""]]


def test_registry_settings_written_before_0029_are_the_default_region_s(server: Server) -> None:
    """Migration 0029 makes registry-level settings regional: rows written before it are the
    default region's (key ""), which the server then answers, and the same keys may be set
    again for another region (the region is part of each primary key)."""
    import importlib

    before = importlib.import_module(
        "cargobay.metadata.migrations.versions.0029_regional_registry_settings"
    ).down_revision
    made = cargobay(server, "db", "upgrade", *db_args(server), "--revision", before)
    assert made.returncode == 0, made.stderr
    policy = json.dumps({"Version": "2012-10-17", "Statement": []})
    rows = {
        "registry_policies": "(registry_id, policy_text, updated_at) VALUES (:a, :p, :t)",
        "replication_configurations": "(registry_id, configuration, updated_at)"
        " VALUES (:a, '{\"rules\": []}', :t)",
        "registry_scanning_configurations": "(registry_id, scan_type, rules, updated_at)"
        " VALUES (:a, 'BASIC', '[]', :t)",
        "pull_through_cache_rules": "(registry_id, prefix, upstream_url, upstream_registry,"
        " created_at, updated_at) VALUES (:a, 'hub', 'registry-1.docker.io', 'docker-hub',"
        " :t, :t)",
        "repository_creation_templates": "(registry_id, prefix, encryption_type,"
        " image_tag_mutability, applied_for, created_at, updated_at)"
        " VALUES (:a, 'team', 'AES256', 'IMMUTABLE', '[\"CREATE_ON_PUSH\"]', :t, :t)",
        "registry_account_settings": "(registry_id, name, value, updated_at)"
        " VALUES (:a, 'BASIC_SCAN_TYPE_VERSION', 'CLAIR', :t)",
    }
    params = {"a": "000000000000", "p": policy, "t": time.time()}
    sql(server, *(f"INSERT INTO {table} {values}" for table, values in rows.items()), params=params)
    upgraded = cargobay(server, "db", "upgrade", *db_args(server))
    assert upgraded.returncode == 0, upgraded.stderr
    for table in rows:
        assert sql(server, f"SELECT registry_id, region FROM {table}") == [["000000000000", ""]]
    # The same key in another region is another row.
    sql(
        server,
        "INSERT INTO registry_policies (registry_id, region, policy_text, updated_at)"
        " VALUES (:a, 'eu-west-1', :p, :t)",
        params=params,
    )
    server.start()
    ecr = client(server)
    assert ecr.get_registry_policy()["policyText"] == policy
    assert ecr.get_account_setting(name="BASIC_SCAN_TYPE_VERSION")["value"] == "CLAIR"
    [template] = ecr.describe_repository_creation_templates()["repositoryCreationTemplates"]
    assert (template["prefix"], template["imageTagMutability"]) == ("team", "IMMUTABLE")
    [rule] = ecr.describe_pull_through_cache_rules()["pullThroughCacheRules"]
    assert rule["ecrRepositoryPrefix"] == "hub"


def test_signing_configuration_and_exclusions_from_before_0030_are_the_default_region_s(
    server: Server,
) -> None:
    """Migration 0030 makes the signing configuration and the pull-time update exclusions
    regional: rows written before it are the default region's, which the server answers."""
    import importlib

    before = importlib.import_module(
        "cargobay.metadata.migrations.versions.0030_regional_signing_and_exclusions"
    ).down_revision
    made = cargobay(server, "db", "upgrade", *db_args(server), "--revision", before)
    assert made.returncode == 0, made.stderr
    arn = "arn:aws:iam::000000000000:user/scanner"
    rules = [{"signingProfileArn": "arn:aws:signer:us-east-1:000000000000:/signing-profiles/prof"}]
    params = {"a": "000000000000", "arn": arn, "r": json.dumps(rules), "t": time.time()}
    sql(
        server,
        "INSERT INTO registry_signing_configurations (registry_id, rules, updated_at)"
        " VALUES (:a, :r, :t)",
        "INSERT INTO pull_time_update_exclusions (registry_id, principal_arn, created_at)"
        " VALUES (:a, :arn, :t)",
        params=params,
    )
    upgraded = cargobay(server, "db", "upgrade", *db_args(server))
    assert upgraded.returncode == 0, upgraded.stderr
    for table in ("registry_signing_configurations", "pull_time_update_exclusions"):
        assert sql(server, f"SELECT registry_id, region FROM {table}") == [["000000000000", ""]]
    server.start()
    ecr = client(server)
    assert ecr.get_signing_configuration()["signingConfiguration"]["rules"] == rules
    assert ecr.list_pull_time_update_exclusions()["pullTimeUpdateExclusions"] == [arn]


def _structure(server: Server) -> dict[str, dict]:
    """Every table as the database itself describes it: columns (type, collation included on
    PostgreSQL, nullability, server default), primary key, foreign keys with their ON DELETE,
    unique constraints, indexes and check constraints; column order aside."""
    from sqlalchemy import inspect

    def describe(sync) -> dict[str, dict]:
        seen = inspect(sync)
        tables = {}
        for table in sorted(set(seen.get_table_names()) - {"alembic_version"}):
            columns = {
                c["name"]: (str(c["type"]), c["nullable"], str(c.get("default")))
                for c in seen.get_columns(table)
            }
            pk = seen.get_pk_constraint(table)
            foreign = sorted(
                (
                    tuple(f["constrained_columns"]),
                    f["referred_table"],
                    tuple(f["referred_columns"]),
                    str((f.get("options") or {}).get("ondelete")),
                )
                for f in seen.get_foreign_keys(table)
            )
            tables[table] = {
                "columns": columns,
                "primary key": (pk.get("name"), tuple(pk["constrained_columns"])),
                "foreign keys": foreign,
                "unique": sorted(
                    (u["name"], tuple(u["column_names"]))
                    for u in seen.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                    for i in seen.get_indexes(table)
                ),
                "checks": sorted(c["sqltext"] for c in seen.get_check_constraints(table)),
            }
        return tables

    async def run() -> dict[str, dict]:
        engine = create_async_engine(async_url(server.settings.database_url))
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(describe)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_new_database_is_built_as_the_migrations_build_it(tmp_path: Path) -> None:
    """An empty database brought to head in one step (from schema.py, then stamped) has what
    replaying every revision gives: the same tables, columns, defaults, collations, keys,
    indexes and constraints, and the same revision."""
    replayed, direct = Server(tmp_path / "replayed"), Server(tmp_path / "direct")
    try:
        for server in (replayed, direct):
            server.data_dir.mkdir(parents=True)
        for revision in (FIRST, HEAD):
            made = cargobay(replayed, "db", "upgrade", *db_args(replayed), "--revision", revision)
            assert made.returncode == 0, made.stderr
        made = cargobay(direct, "db", "upgrade", *db_args(direct))
        assert made.returncode == 0, made.stderr
        revision = "SELECT version_num FROM alembic_version"
        assert sql(replayed, revision) == sql(direct, revision) == [[HEAD]]
        built, expected = _structure(direct), _structure(replayed)
        assert set(built) == set(expected)
        for table in expected:
            assert built[table] == expected[table], table
    finally:
        replayed.discard()
        direct.discard()
