"""Pull-through cache rules (Create/Describe/Update/Delete/ValidatePullThroughCacheRule)."""

from __future__ import annotations

from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.errors import DomainError
from cargobay.upstream.errors import UpstreamError


@action("CreatePullThroughCacheRule")
async def create_rule(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    rule = await call.services.pull_through_rules.create(
        call.use_registry(payload),
        prefix=payload.get("ecrRepositoryPrefix"),
        upstream_url=payload.get("upstreamRegistryUrl"),
        upstream_registry=payload.get("upstreamRegistry"),
        credential_arn=payload.get("credentialArn"),
        custom_role_arn=payload.get("customRoleArn"),
        upstream_prefix=payload.get("upstreamRepositoryPrefix"),
    )
    described = rule.describe()
    described.pop("updatedAt")
    return described


@action("DescribePullThroughCacheRules")
async def describe_rules(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    registry_id = call.use_registry(payload)
    prefixes = payload.get("ecrRepositoryPrefixes")
    if prefixes is not None and (
        not isinstance(prefixes, list)
        or not 1 <= len(prefixes) <= 100
        or not all(isinstance(p, str) for p in prefixes)
    ):
        raise errors.InvalidParameter("ecrRepositoryPrefixes must list 1 to 100 prefixes")
    size = call.page_size(payload)
    start = call.decode_token(payload) or 0
    if not isinstance(start, int) or start < 0:
        raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
    rules = await call.services.pull_through_rules.list(registry_id, prefixes)
    page = rules[start : start + size]
    answer: dict[str, Any] = {"pullThroughCacheRules": [rule.describe() for rule in page]}
    if start + size < len(rules):
        answer["nextToken"] = call.encode_token(start + size)
    return answer


@action("UpdatePullThroughCacheRule")
async def update_rule(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    rule = await call.services.pull_through_rules.update(
        call.use_registry(payload),
        payload.get("ecrRepositoryPrefix"),
        credential_arn=payload.get("credentialArn"),
        custom_role_arn=payload.get("customRoleArn"),
    )
    described = rule.describe()
    return {
        key: described[key]
        for key in ("ecrRepositoryPrefix", "registryId", "updatedAt", "credentialArn",
                    "customRoleArn", "upstreamRepositoryPrefix")
        if key in described
    }  # fmt: skip


@action("DeletePullThroughCacheRule")
async def delete_rule(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    rule = await call.services.pull_through_rules.delete(
        call.use_registry(payload), payload.get("ecrRepositoryPrefix")
    )
    described = rule.describe()
    described.pop("updatedAt")
    described.pop("upstreamRegistry", None)
    return described


@action("ValidatePullThroughCacheRule")
async def validate_rule(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    """Contacts the upstream (`GET /v2/`, authenticating with the rule's credentials) and
    reports whether that works, and why not."""
    service = call.services.pull_through_rules
    rule = await service.get(call.use_registry(payload), payload.get("ecrRepositoryPrefix"))
    answer = rule.describe()
    for key in ("createdAt", "updatedAt", "upstreamRegistry"):
        answer.pop(key, None)
    try:
        client = await call.services.pullthrough.clients.get(rule)
        await client.ping()
    except (UpstreamError, DomainError) as exc:
        why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return {**answer, "isValid": False, "failure": f"{type(exc).__name__}: {why}"}
    return {**answer, "isValid": True}
