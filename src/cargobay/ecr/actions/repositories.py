"""Repository actions: create, describe, delete, settings and resource tags."""

from __future__ import annotations

from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall, token_text
from cargobay.errors import RepositoryAlreadyExists, RepositoryNotFound
from cargobay.iam.permissions import TAG_RESOURCE
from cargobay.registry import mutability
from cargobay.registry.repositories import Repository

ENCRYPTION = ("AES256", "KMS", "KMS_DSSE")


def repository_shape(call: EcrCall, repo: Repository) -> dict[str, Any]:
    encryption: dict[str, Any] = {"encryptionType": repo.encryption_type}
    if repo.kms_key:
        encryption["kmsKey"] = repo.kms_key
    shape = {
        "repositoryArn": call.repository_arn(repo.name, repo.registry_id),
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "repositoryUri": call.repository_uri(repo.name),
        "createdAt": repo.created_at,
        "imageTagMutability": repo.tag_mutability,
        "imageScanningConfiguration": {"scanOnPush": bool(repo.scan_on_push)},
        "encryptionConfiguration": encryption,
    }
    if repo.mutability.exclusions:
        shape["imageTagMutabilityExclusionFilters"] = repo.mutability.filters_shape()
    return shape


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


def _mutability(payload: dict[str, Any], default: str | None = None) -> mutability.TagMutability:
    return mutability.parse(
        payload.get("imageTagMutability", default),
        payload.get("imageTagMutabilityExclusionFilters"),
    )


@action("CreateRepository")
async def create_repository(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    name = call.name_param(payload)
    tags = parse_tags(payload.get("tags"))
    if tags:
        # Tagging at creation also needs TagResource: a check beyond the table's.
        await call.require(TAG_RESOURCE, name)
    scanning = payload.get("imageScanningConfiguration") or {}
    encryption = payload.get("encryptionConfiguration") or {}
    if not isinstance(encryption, dict):
        raise errors.InvalidParameter("encryptionConfiguration must be an object")
    encryption_type = encryption.get("encryptionType", "AES256")
    if encryption_type not in ENCRYPTION:
        raise errors.InvalidParameter(f"encryptionType must be one of {', '.join(ENCRYPTION)}")
    kms_key = encryption.get("kmsKey")
    if kms_key is not None and (not isinstance(kms_key, str) or len(kms_key) > 2048):
        raise errors.InvalidParameter("kmsKey must be a string of at most 2048 characters")
    if kms_key is not None and encryption_type == "AES256":
        raise errors.InvalidParameter(
            "Invalid parameter at 'encryptionConfiguration': kmsKey can only be given with "
            "encryptionType KMS or KMS_DSSE"
        )
    if kms_key == "":
        raise errors.InvalidParameter("Invalid parameter at 'kmsKey': it cannot be empty")
    repo, created = await call.services.repositories.create(
        call.registry_id,
        name,
        tag_mutability=_mutability(payload, "MUTABLE"),
        scan_on_push=bool(scanning.get("scanOnPush", False)),
        encryption_type=encryption_type,
        kms_key=kms_key,
        tags=tags,
        principal=call.principal,
        context=call.context(),
    )
    if not created:
        raise RepositoryAlreadyExists(
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
        found = await repos.list(registry_id, list(names), None, None)
        missing = sorted(set(names) - {r.name for r in found})
        if missing:
            raise RepositoryNotFound(
                f"The repository with name '{missing[0]}' does not exist in the registry with "
                f"id '{registry_id}'"
            )
        return {"repositories": [repository_shape(call, r) for r in found]}
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
    await call.services.repositories.delete(repo, force=bool(payload.get("force", False)))
    return {"repository": repository_shape(call, repo)}


@action("PutImageTagMutability")
async def put_image_tag_mutability(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    setting = _mutability(payload)
    await call.services.repositories.set_tag_mutability(repo, setting)
    result: dict[str, Any] = {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageTagMutability": setting.mode,
    }
    if setting.exclusions:
        result["imageTagMutabilityExclusionFilters"] = setting.filters_shape()
    return result


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


@action("TagResource")
async def tag_resource(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(call.arn_repository(payload))
    tags = parse_tags(payload.get("tags"))
    await call.services.repositories.set_tags(repo, tags)
    return {}


@action("UntagResource")
async def untag_resource(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(call.arn_repository(payload))
    keys = payload.get("tagKeys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise errors.InvalidParameter("tagKeys must be a list of strings")
    await call.services.repositories.remove_tags(repo, keys)
    return {}


@action("ListTagsForResource")
async def list_tags_for_resource(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(call.arn_repository(payload))
    tags = await call.services.repositories.tags(repo)
    return {"tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
