"""Repository actions: create, describe, delete, settings and resource tags."""

from __future__ import annotations

import re
from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall, token_text
from cargobay.registry.errors import RepositoryNotEmpty, TooManyTags
from cargobay.registry.repositories import Repository

MUTABILITY = ("MUTABLE", "IMMUTABLE")
ENCRYPTION = ("AES256", "KMS", "KMS_DSSE")
_ARN = re.compile(r"^arn:aws[a-z-]*:ecr:([a-z0-9-]+):([0-9]{12}):repository/(.+)$")


def repository_shape(call: EcrCall, repo: Repository) -> dict[str, Any]:
    encryption: dict[str, Any] = {"encryptionType": repo.encryption_type}
    if repo.kms_key:
        encryption["kmsKey"] = repo.kms_key
    return {
        "repositoryArn": call.repository_arn(repo.name, repo.registry_id),
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "repositoryUri": call.repository_uri(repo.name),
        "createdAt": repo.created_at,
        "imageTagMutability": repo.tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": bool(repo.scan_on_push)},
        "encryptionConfiguration": encryption,
    }


def parse_tags(value: Any) -> dict[str, str]:
    """ECR `Tag` lists ([{"Key", "Value"}]) as a dict, validated as AWS does."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise errors.InvalidParameter("tags must be a list")
    tags: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("Key"), str):
            raise errors.InvalidTagParameter("each tag needs a Key and a Value")
        key, val = item["Key"], item.get("Value", "")
        if not isinstance(val, str):
            raise errors.InvalidTagParameter(f"the value of tag {key!r} must be a string")
        if not 1 <= len(key) <= 128 or len(val) > 256:
            raise errors.InvalidTagParameter("tag keys are 1-128 and values 0-256 characters")
        if any(ch < " " or ch == "\x7f" for ch in key + val):
            raise errors.InvalidTagParameter("tag keys and values cannot hold control characters")
        if key.lower().startswith("aws:"):
            raise errors.InvalidTagParameter("tag keys starting with 'aws:' are reserved")
        tags[key] = val
    if len(tags) > 50:
        raise errors.TooManyTags("a repository can have at most 50 tags")
    return tags


def _mutability(payload: dict[str, Any], default: str | None = None) -> str:
    value = payload.get("imageTagMutability", default)
    if value not in MUTABILITY:
        raise errors.InvalidParameter(
            "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: "
            f"'Member must satisfy enum value set: [{', '.join(MUTABILITY)}]'"
        )
    return value


@action("CreateRepository")
async def create_repository(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    call.use_registry(payload)
    name = call.name_param(payload)
    await call.require("ecr:CreateRepository", name)
    tags = parse_tags(payload.get("tags"))
    if tags:
        await call.require("ecr:TagResource", name)
    scanning = payload.get("imageScanningConfiguration") or {}
    encryption = payload.get("encryptionConfiguration") or {}
    encryption_type = encryption.get("encryptionType", "AES256")
    if encryption_type not in ENCRYPTION:
        raise errors.InvalidParameter(f"encryptionType must be one of {', '.join(ENCRYPTION)}")
    kms_key = encryption.get("kmsKey")
    if kms_key is not None and (not isinstance(kms_key, str) or len(kms_key) > 2048):
        raise errors.InvalidParameter("kmsKey must be a string of at most 2048 characters")
    if kms_key and encryption_type == "AES256":
        raise errors.InvalidParameter("kmsKey can only be given with encryptionType KMS")
    if encryption_type != "AES256" and not kms_key:
        kms_key = f"arn:aws:kms:{call.region}:{call.registry_id}:alias/aws/ecr"
    repo, created = await call.services.repositories.create(
        call.registry_id,
        name,
        tag_mutability=_mutability(payload, "MUTABLE"),
        scan_on_push=bool(scanning.get("scanOnPush", False)),
        encryption_type=encryption_type,
        kms_key=kms_key,
        tags=tags,
    )
    if not created:
        raise errors.RepositoryAlreadyExists(
            f"The repository with name '{name}' already exists in the registry with id "
            f"'{call.registry_id}'"
        )
    return {"repository": repository_shape(call, repo)}


@action("DescribeRepositories")
async def describe_repositories(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    registry_id = call.use_registry(payload)
    names = payload.get("repositoryNames")
    repos = call.services.repositories
    if names is not None:
        if not isinstance(names, list) or not 1 <= len(names) <= 100:
            raise errors.InvalidParameter("repositoryNames must list 1 to 100 names")
        for name in names:
            call.name_param({"repositoryName": name})
            await call.require("ecr:DescribeRepositories", name)
        found = await repos.list(registry_id, list(names), None, None)
        missing = sorted(set(names) - {r.name for r in found})
        if missing:
            raise errors.RepositoryNotFound(
                f"The repository with name '{missing[0]}' does not exist in the registry with "
                f"id '{registry_id}'"
            )
        return {"repositories": [repository_shape(call, r) for r in found]}
    await call.require("ecr:DescribeRepositories")
    limit = call.page_size(payload)
    after = call.decode_token(payload, token_text)
    page = await repos.list(registry_id, None, after, limit + 1)
    result: dict[str, Any] = {"repositories": [repository_shape(call, r) for r in page[:limit]]}
    if len(page) > limit:
        result["nextToken"] = call.encode_token(page[limit - 1].name)
    return result


@action("DeleteRepository")
async def delete_repository(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    try:
        await call.services.repositories.delete(repo, force=bool(payload.get("force", False)))
    except RepositoryNotEmpty as exc:
        raise errors.RepositoryNotEmpty(exc.message) from None
    return {"repository": repository_shape(call, repo)}


@action("PutImageTagMutability")
async def put_image_tag_mutability(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    value = _mutability(payload)
    await call.services.repositories.update(repo, tag_mutability=value)
    return {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageTagMutability": value,
    }


@action("PutImageScanningConfiguration")
async def put_image_scanning_configuration(
    call: EcrCall, payload: dict[str, Any]
) -> dict[str, Any]:
    repo = await call.repository(payload)
    config = payload.get("imageScanningConfiguration")
    if not isinstance(config, dict) or not isinstance(config.get("scanOnPush", False), bool):
        raise errors.InvalidParameter("imageScanningConfiguration.scanOnPush must be a boolean")
    scan = bool(config.get("scanOnPush", False))
    await call.services.repositories.update(repo, scan_on_push=scan)
    return {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageScanningConfiguration": {"scanOnPush": scan},
    }


async def _repository_by_arn(call: EcrCall, payload: dict[str, Any], iam_action: str):
    arn = payload.get("resourceArn")
    match = _ARN.match(arn) if isinstance(arn, str) else None
    if not match:
        raise errors.InvalidParameter(
            "Invalid parameter at 'resourceArn' failed to satisfy constraint: 'Invalid ARN'"
        )
    region, registry_id, name = match.groups()
    if region != call.region:
        raise errors.InvalidParameter(f"resourceArn names region {region}, not {call.region}")
    return await call.repository({"registryId": registry_id, "repositoryName": name}, iam_action)


@action("TagResource")
async def tag_resource(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await _repository_by_arn(call, payload, "ecr:TagResource")
    tags = parse_tags(payload.get("tags"))
    try:
        await call.services.repositories.set_tags(repo, tags)
    except TooManyTags as exc:
        raise errors.TooManyTags(exc.message) from None
    return {}


@action("UntagResource")
async def untag_resource(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await _repository_by_arn(call, payload, "ecr:UntagResource")
    keys = payload.get("tagKeys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise errors.InvalidParameter("tagKeys must be a list of strings")
    await call.services.repositories.remove_tags(repo, keys)
    return {}


@action("ListTagsForResource")
async def list_tags_for_resource(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await _repository_by_arn(call, payload, "ecr:ListTagsForResource")
    tags = await call.services.repositories.tags(repo)
    return {"tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


@action("DescribeRegistry")
async def describe_registry(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    await call.require("ecr:DescribeRegistry")
    return {"registryId": call.registry_id, "replicationConfiguration": {"rules": []}}


@action("GetRegistryScanningConfiguration")
async def get_registry_scanning_configuration(
    call: EcrCall, payload: dict[str, Any]
) -> dict[str, Any]:
    await call.require("ecr:GetRegistryScanningConfiguration")
    return {
        "registryId": call.registry_id,
        "scanningConfiguration": {"scanType": "BASIC", "rules": []},
    }
