"""What serving processes load: checking HTTP Basic credentials must not import
`cryptography` (about 6 MiB resident per worker); only SigV4, which needs a key's plaintext
secret, may load it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import requests
from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from e2e.ecrhelp import signed_post
from e2e.ocihttp import Client, assert_error, unique_repo
from server import Server


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (the supervisor's workers)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name (field 2) may hold spaces; the parent pid follows its ")".
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _mapped_files(pid: int) -> set[str]:
    """Every file mapped into the process (shared libraries, extension modules)."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {parts[5] for parts in (line.split(maxsplit=5) for line in lines) if len(parts) == 6}


def _cryptography_in(pid: int) -> list[str]:
    return sorted(path for path in _mapped_files(pid) if "cryptography" in path)


def _workers(server: Server) -> list[int]:
    assert server.proc is not None
    workers = _children(server.proc.pid)
    assert len(workers) == server.workers
    # The check sees extension modules: aiohttp's are loaded by every worker.
    assert all(any("aiohttp" in path for path in _mapped_files(pid)) for pid in workers)
    return workers


def _assert_basic_checks_skip_cryptography(server: Server, workers: list[int]) -> None:
    # Fresh connections, so SO_REUSEPORT spreads the Basic checks over the workers.
    for _ in range(20):
        assert requests.get(f"{server.url}/v2/", auth=server.credentials).status_code == 200
        wrong = requests.get(f"{server.url}/v2/", auth=(server.credentials[0], "wrong"))
        assert_error(wrong, 401, "UNAUTHORIZED")
    repo = unique_repo("imports")
    digest = Client(server).push_blob(repo, b"a small blob")
    assert Client(server).pull_blob(repo, digest) == b"a small blob"

    assert server.proc is not None
    assert sorted(_children(server.proc.pid)) == sorted(workers)  # none restarted
    for pid in workers:
        assert _cryptography_in(pid) == [], f"worker {pid} loaded cryptography"


def test_basic_auth_does_not_load_cryptography_in_workers(fresh_registry: Server) -> None:
    server = fresh_registry
    workers = _workers(server)
    _assert_basic_checks_skip_cryptography(server, workers)

    # SigV4 opens the sealed secret, so the worker that serves it loads `cryptography`: the
    # assertion above can fail.
    for _ in range(10):
        assert signed_post(server, "DescribeRepositories", {}).status_code == 200
    assert any(_cryptography_in(pid) for pid in workers)


async def _verifiers(url: str, *, clear: bool = False) -> dict[str, str | None]:
    """Every access key's stored verifier; with `clear`, first forget them all, as a
    database upgraded from revision 0004 holds them."""
    k = schema.access_keys
    db = Database(url)
    try:
        if clear:
            async with db.write() as conn:
                await conn.execute(k.update().values(secret_verifier=None))
        async with db.read() as conn:
            return dict((await conn.execute(select(k.c.id, k.c.secret_verifier))).all())
    finally:
        await db.dispose()


def test_start_up_fills_in_verifiers_of_older_keys(fresh_registry: Server) -> None:
    server = fresh_registry
    server.stop()
    url = server.settings.database_url
    assert set(asyncio.run(_verifiers(url, clear=True)).values()) == {None}
    server.start()
    assert None not in asyncio.run(_verifiers(url)).values()
    _assert_basic_checks_skip_cryptography(server, _workers(server))


def test_supervisor_runs_without_the_application(fresh_registry: Server) -> None:
    """`cargobay serve` execs a small supervisor: no aiohttp, no SQLAlchemy, no command line
    modules, while its forked workers load the application."""
    server = fresh_registry
    assert server.proc is not None
    supervisor = server.proc.pid
    argv = Path(f"/proc/{supervisor}/cmdline").read_bytes().split(b"\0")
    assert b"cargobay.server" in argv, argv
    mapped = _mapped_files(supervisor)
    assert not [path for path in mapped if "aiohttp" in path or "sqlalchemy" in path]
    assert all(any("aiohttp" in path for path in _mapped_files(pid)) for pid in _workers(server))
