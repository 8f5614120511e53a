"""Reading a request's database statement count (`count_db_statements`) from its response,
and the server that reports it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import botocore
import pytest

from e2e.ocihttp import Client
from server import Server

HEADER = "X-Cargobay-Db-Statements"


def counting_server(
    tmp_path_factory: pytest.TempPathFactory, name: str, **env: str
) -> Iterator[Server]:
    """A module's own one-worker server that reports each request's statement count (one
    worker: every call warms and is counted by the same process); `yield from` it in a
    fixture. `env`: more settings."""
    started = Server(
        tmp_path_factory.mktemp(name) / "data",
        workers=1,
        env={"CARGOBAY_COUNT_DB_STATEMENTS": "true", **env},
    ).start()
    yield started
    started.discard()


def v2_count(server: Any, path: str, method: str = "GET") -> int:
    """The statements of a warm request: the least of three after one that fills caches (the
    credential store's revocation poll, once a second per process, may land in any one)."""
    http = Client(server)
    counts = []
    for _ in range(4):
        response = http.request(method, path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        counts.append(int(response.headers[HEADER]))
    return min(counts[1:])


def ecr_count(ecr: Any, operation: str, params: dict[str, Any]) -> int:
    """The statements of a warm ECR call (the second of two)."""
    method = getattr(ecr, botocore.xform_name(operation))
    method(**params)
    response = method(**params)
    return int(response["ResponseMetadata"]["HTTPHeaders"][HEADER.lower()])
