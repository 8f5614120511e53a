"""10,000 repositories: the repositories page pages, searches and sorts in SQL, so every page
answers with the right rows (server time is reported in `Server-Timing`, not asserted)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest

from cargobay.metadata import schema
from cargobay.metadata.db import Database
from console.consolehelp import signed_in
from e2e.ecrhelp import push
from imagebuilder import build_image
from server import Server

COUNT = 10_000


def _insert_repositories(server: Server, prefix: str) -> None:
    async def insert() -> None:
        db = Database(server.settings.database_url)
        now = time.time()
        rows = [
            {
                "registry_id": "000000000000",
                "name": f"{prefix}/service-{i:05d}",
                "created_at": now - COUNT + i,
                "tag_mutability": "MUTABLE",
                "scan_on_push": False,
                "encryption_type": "AES256",
            }
            for i in range(COUNT)
        ]
        try:
            async with db.write() as conn:
                await conn.execute(schema.repositories.insert(), rows)
        finally:
            await db.dispose()

    asyncio.run(insert())


@pytest.fixture(scope="module")
def big_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("scale") / "data").start(timeout=120)
    _insert_repositories(server, "fleet")
    image = build_image(tmp_path_factory.mktemp("img") / "image", [2048])
    push(server, image, "fleet/service-04242:latest")  # one with an image, pushed last
    yield server
    server.discard()


def _names(html: str) -> list[str]:
    return re.findall(r'href="/console/repository\?name=[^"]+">([^<]+)</a>', html)


def _timing(response) -> float:
    return float(response.headers["Server-Timing"].split("dur=")[1])


def test_ten_thousand_repositories_page(big_registry) -> None:
    visitor = signed_in(big_registry)
    first = visitor.get("repositories")
    assert first.status_code == 200
    assert "(10000)" in first.text and "Page 1 of 200" in first.text
    assert _names(first.text)[0] == "fleet/service-00000"
    last = visitor.get("repositories?page=200")
    assert _names(last.text)[-1] == "fleet/service-09999"
    search = visitor.get("repositories?prefix=fleet/service-0424")
    assert _names(search.text) == [f"fleet/service-0424{i}" for i in range(10)]
    pushed = visitor.get("repositories?sort=pushed")
    assert _names(pushed.text)[0] == "fleet/service-04242"
    newest = visitor.get("repositories?sort=-created&page=2")
    assert _names(newest.text)[0] == "fleet/service-09949"
    timings = {
        name: _timing(response)
        for name, response in (
            ("first", first),
            ("last", last),
            ("search", search),
            ("pushed", pushed),
            ("newest", newest),
        )
    }
    print("server time, ms:", timings)
