"""The one AWS JSON 1.1 dispatcher: routing by target prefix, SigV4 for the service's own
signing name, authorization before every handler, and AWS error shapes."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from cargobay import awsjson
from cargobay.awsjson import door
from cargobay.errors import AccessDenied, NotFound
from service.harness import running

pytestmark = pytest.mark.backend

PREFIX = "DemoService_2026."


class Missing(Exception):
    pass


def _service(calls: list[str]) -> awsjson.JsonService:
    async def echo(call: awsjson.JsonCall, payload: dict[str, Any]) -> dict[str, Any]:
        calls.append(f"handled {call.operation}")
        return {"Echo": payload.get("Value"), "Account": call.account_id}

    async def lost(call: awsjson.JsonCall, payload: dict[str, Any]) -> dict[str, Any]:
        raise Missing("no such thing")

    async def gone(call: awsjson.JsonCall, payload: dict[str, Any]) -> dict[str, Any]:
        raise NotFound("domain says not found")

    async def authorize(call: awsjson.JsonCall, payload: dict[str, Any]) -> None:
        calls.append(f"authorized {call.operation}")
        if payload.get("Value") == "forbidden":
            raise AccessDenied("not for you")

    def map_error(exc: Exception) -> tuple[str, int] | None:
        return ("ResourceNotFoundException", 400) if isinstance(exc, Missing) else None

    return awsjson.JsonService(
        target_prefix=PREFIX,
        signing_name="demo",
        operations={
            "Echo": awsjson.Operation(echo, "demo:Echo"),
            "Lost": awsjson.Operation(lost, "demo:Lost"),
            "Gone": awsjson.Operation(gone, "demo:Gone"),
        },
        authorize=authorize,
        map_error=map_error,
    )


def test_a_service_table_is_a_door(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    module = types.ModuleType("cargobay_demo_door")
    module.SERVICE = _service(calls)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cargobay_demo_door", module)
    monkeypatch.setitem(door.SERVICES, PREFIX, "cargobay_demo_door")

    async def scenario() -> None:
        async with running(tmp_path) as registry:
            reply = await registry.aws_json(PREFIX + "Echo", "demo", {"Value": "hi"})
            assert reply.status == 200, reply
            assert reply.json() == {"Echo": "hi", "Account": "000000000000"}
            assert calls == ["authorized Echo", "handled Echo"]

            reply = await registry.aws_json(PREFIX + "Echo", "demo", {"Value": "forbidden"})
            assert (reply.status, reply.aws_type) == (400, "AccessDeniedException")
            assert calls[-1] == "authorized Echo"

            reply = await registry.aws_json(PREFIX + "Lost", "demo", {})
            assert reply.aws_type == "ResourceNotFoundException"
            assert reply.headers["x-amzn-ErrorType"] == "ResourceNotFoundException"
            reply = await registry.aws_json(PREFIX + "Gone", "demo", {})
            assert reply.aws_type == "NotFoundException"
            reply = await registry.aws_json(PREFIX + "Nope", "demo", {})
            assert reply.aws_type == "UnknownOperationException"
            # Signed for another service: refused before any handler runs.
            calls.clear()
            reply = await registry.aws_json(PREFIX + "Echo", "kms", {"Value": "x"})
            assert reply.status in (400, 403) and calls == []
            # ECR's own door is untouched.
            reply = await registry.ecr("DescribeRepositories", {})
            assert reply.status == 200

    asyncio.run(scenario())
