"""Pull-time update exclusions: Register/DeregisterPullTimeUpdateExclusion and
ListPullTimeUpdateExclusions over `registry.pulltime` (which owns the rule and the rows)."""

from __future__ import annotations

from typing import Any

from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall, token_text
from cargobay.registry.pulltime import MAX_EXCLUSIONS, check_arn


@action("RegisterPullTimeUpdateExclusion")
async def register_exclusion(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    arn = check_arn(payload.get("principalArn"))
    exclusions = call.services.manifests.pull_exclusions
    made = await exclusions.register(call.registry_id, arn)
    return {"principalArn": made.principal_arn, "createdAt": made.created_at}


@action("DeregisterPullTimeUpdateExclusion")
async def deregister_exclusion(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    arn = check_arn(payload.get("principalArn"))
    await call.services.manifests.pull_exclusions.deregister(call.registry_id, arn)
    return {"principalArn": arn}


@action("ListPullTimeUpdateExclusions")
async def list_exclusions(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    # The answer's list holds at most MAX_EXCLUSIONS (botocore's PullTimeUpdateExclusionList).
    limit = min(call.page_size(payload, default=MAX_EXCLUSIONS), MAX_EXCLUSIONS)
    after = call.decode_token(payload, token_text)
    page = await call.services.manifests.pull_exclusions.list(call.registry_id, after, limit + 1)
    result: dict[str, Any] = {"pullTimeUpdateExclusions": page[:limit]}
    if len(page) > limit:
        result["nextToken"] = call.encode_token(page[limit - 1])
    return result
