"""Repository and registry policies (resource-based IAM policies)."""

from __future__ import annotations

import logging
from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.errors import RegistryPolicyNotFound, RepositoryPolicyNotFound
from cargobay.iam import policyscope
from cargobay.iam.policy import Policy, PolicyError, parse_policy

log = logging.getLogger("cargobay.ecr")

MAX_POLICY_CHARS = 10_240


def _invalid(kind: str, detail: object) -> errors.EcrError:
    """ECR's answer to a policy it refuses: the reason is logged, not returned."""
    log.info("refused a %s policy: %s", kind, detail)
    return errors.InvalidParameter(
        "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
        f"'Invalid {kind} policy provided'"
    )


def _policy_text(payload: dict[str, Any], kind: str = "repository") -> tuple[str, Policy]:
    text = payload.get("policyText")
    if not isinstance(text, str) or not text:
        raise errors.InvalidParameter("policyText is required")
    if len(text) > MAX_POLICY_CHARS:
        raise errors.InvalidParameter(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: "
            f"'Member must have length less than or equal to {MAX_POLICY_CHARS}'"
        )
    try:
        policy = parse_policy(text, resource_policy=True, unique_sids=False)
    except PolicyError as exc:
        raise _invalid(kind, exc) from None
    return text, policy


@action("SetRepositoryPolicy")
async def set_repository_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    text, _ = _policy_text(payload)
    repos = call.services.repositories
    previous = await repos.get_field(repo, "policy_text")
    await repos.update(repo, policy_text=text)
    if not payload.get("force", False):
        # Refuse a policy that would lock the caller out of changing it again, as ECR does.
        allowed = await call.services.authorizer.allowed(
            call.principal,
            "ecr:SetRepositoryPolicy",
            call.resource_for(repo.name),
            call.context(),
        )
        if not allowed:
            await repos.update(repo, policy_text=previous)
            raise errors.InvalidParameter(
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'The policy "
                "would prevent you from setting a policy again; use force to set it anyway'"
            )
    return {"registryId": repo.registry_id, "repositoryName": repo.name, "policyText": text}


async def _stored_policy(call: EcrCall, payload: dict[str, Any]):
    repo = await call.repository(payload)
    text = await call.services.repositories.get_field(repo, "policy_text")
    if not text:
        raise RepositoryPolicyNotFound(
            f"Repository policy does not exist for the repository with name '{repo.name}' in "
            f"the registry with id '{repo.registry_id}'"
        )
    return repo, text


@action("GetRepositoryPolicy")
async def get_repository_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo, text = await _stored_policy(call, payload)
    return {"registryId": repo.registry_id, "repositoryName": repo.name, "policyText": text}


@action("DeleteRepositoryPolicy")
async def delete_repository_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo, text = await _stored_policy(call, payload)
    await call.services.repositories.update(repo, policy_text=None)
    return {"registryId": repo.registry_id, "repositoryName": repo.name, "policyText": text}


@action("PutRegistryPolicy")
async def put_registry_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    text, policy = _policy_text(payload, "registry")
    settings = call.services.scans.settings
    scope = await settings.account_setting(call.registry_id, policyscope.SETTING)
    try:
        policyscope.check_registry_policy(policy, scope)
    except PolicyError as exc:
        raise _invalid("registry", exc) from None
    await call.services.repositories.set_registry_policy(call.registry_id, text)
    return {"registryId": call.registry_id, "policyText": text}


async def _registry_policy(call: EcrCall) -> str:
    text = await call.services.repositories.registry_policy(call.registry_id)
    if text is None:
        raise RegistryPolicyNotFound(
            f"Registry policy does not exist in the registry with id '{call.registry_id}'"
        )
    return text


@action("GetRegistryPolicy")
async def get_registry_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    text = await _registry_policy(call)
    return {"registryId": call.registry_id, "policyText": text}


@action("DeleteRegistryPolicy")
async def delete_registry_policy(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    text = await _registry_policy(call)
    await call.services.repositories.set_registry_policy(call.registry_id, None)
    return {"registryId": call.registry_id, "policyText": text}
