"""Reading a request's database statement count (`count_db_statements`) from its response."""

from __future__ import annotations

from typing import Any

import botocore

from e2e.ocihttp import Client

HEADER = "X-Cargobay-Db-Statements"


def v2_count(server: Any, path: str) -> int:
    """The statements of a warm request (the second of two: the first fills caches)."""
    http = Client(server)
    for _ in range(2):
        response = http.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
    return int(response.headers[HEADER])


def ecr_count(ecr: Any, operation: str, params: dict[str, Any]) -> int:
    """The statements of a warm ECR call (the second of two)."""
    method = getattr(ecr, botocore.xform_name(operation))
    method(**params)
    response = method(**params)
    return int(response["ResponseMetadata"]["HTTPHeaders"][HEADER.lower()])
