"""Replication and repository creation templates: the ECR shapes over the replication and
template services (rules, quotas and validation live there)."""

from __future__ import annotations

from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.actions.images import resolve_image
from cargobay.ecr.actions.repositories import parse_tags
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.registry import mutability as tag_mutability
from cargobay.registry.templates import APPLIED_FOR, Template
from cargobay.replication.config import Destination

ENCRYPTION = ("AES256", "KMS", "KMS_DSSE")


@action("PutReplicationConfiguration")
async def put_replication_configuration(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    registry_id = call.use_registry(payload)
    config = await call.services.replication.put_configuration(
        registry_id, payload.get("replicationConfiguration")
    )
    return {"replicationConfiguration": config.to_json()}


@action("DescribeRegistry")
async def describe_registry(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    config = await call.services.replication.configuration(call.registry_id)
    return {"registryId": call.registry_id, "replicationConfiguration": config.to_json()}


@action("DescribeImageReplicationStatus")
async def describe_image_replication_status(
    call: EcrCall, payload: dict[str, Any]
) -> dict[str, Any]:
    repo = await call.repository(payload)
    image_id = payload.get("imageId")
    if not isinstance(image_id, dict):
        raise errors.InvalidParameter("imageId is required")
    digest = await resolve_image(call, repo, image_id)
    statuses = await call.services.replication.statuses(repo.id, digest)
    resolved = {"imageDigest": digest}
    if image_id.get("imageTag"):
        resolved["imageTag"] = image_id["imageTag"]
    return {
        "repositoryName": repo.name,
        "imageId": resolved,
        "replicationStatuses": [s.to_json() for s in statuses],
    }


def _template_fields(payload: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    """The template members of a Create/Update request, checked beyond the model's shape."""
    fields: dict[str, Any] = {}
    applied = payload.get("appliedFor")
    if applied is not None or creating:
        if not isinstance(applied, list) or not applied or not set(applied) <= set(APPLIED_FOR):
            raise errors.InvalidParameter(
                "appliedFor must list one or more of REPLICATION, PULL_THROUGH_CACHE, "
                "CREATE_ON_PUSH"
            )
        fields["applied_for"] = tuple(dict.fromkeys(applied))
    if "description" in payload:
        fields["description"] = payload["description"]
    encryption = payload.get("encryptionConfiguration")
    if encryption is not None:
        kind = encryption.get("encryptionType") if isinstance(encryption, dict) else None
        if kind not in ENCRYPTION:
            raise errors.InvalidParameter(
                "encryptionConfiguration.encryptionType must be AES256, KMS or KMS_DSSE"
            )
        key = encryption.get("kmsKey") or None
        if kind == "AES256" and key:
            raise errors.InvalidParameter("kmsKey can only be given with encryptionType KMS")
        fields["encryption_type"], fields["kms_key"] = kind, key
    if "resourceTags" in payload:
        fields["resource_tags"] = tuple(parse_tags(payload["resourceTags"]).items())
    mode = payload.get("imageTagMutability")
    filters = payload.get("imageTagMutabilityExclusionFilters")
    if creating and mode is None and filters is not None:
        mode = tag_mutability.MUTABLE  # the default mode, which takes no filters
    if mode is not None:
        setting = tag_mutability.parse(mode, filters)
        fields["image_tag_mutability"] = setting.mode
        fields["mutability_exclusions"] = setting.exclusions
    elif filters is not None:  # an update of the filters alone: checked as filters
        setting = tag_mutability.parse(tag_mutability.IMMUTABLE_WITH_EXCLUSION, filters)
        fields["mutability_exclusions"] = setting.exclusions
    for member, column in (
        ("repositoryPolicy", "repository_policy"),
        ("lifecyclePolicy", "lifecycle_policy"),
        ("customRoleArn", "custom_role_arn"),
    ):
        if member in payload:
            fields[column] = payload[member]
    return fields


def _prefix(payload: dict[str, Any]) -> str:
    prefix = payload.get("prefix")
    if not isinstance(prefix, str) or not prefix:
        raise errors.InvalidParameter("prefix is required")
    return prefix


def _answer(call: EcrCall, template: Template) -> dict[str, Any]:
    return {"registryId": call.registry_id, "repositoryCreationTemplate": template.to_json()}


@action("CreateRepositoryCreationTemplate")
async def create_template(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    fields = _template_fields(payload, creating=True)
    template = Template(prefix=_prefix(payload), **fields)
    return _answer(call, await call.services.templates.create(call.registry_id, template))


@action("UpdateRepositoryCreationTemplate")
async def update_template(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    fields = _template_fields(payload, creating=False)
    template = await call.services.templates.update(call.registry_id, _prefix(payload), **fields)
    return _answer(call, template)


@action("DeleteRepositoryCreationTemplate")
async def delete_template(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    template = await call.services.templates.delete(call.registry_id, _prefix(payload))
    return _answer(call, template)


@action("DescribeRepositoryCreationTemplates")
async def describe_templates(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    prefixes = payload.get("prefixes") or None
    limit = call.page_size(payload)
    after = call.decode_token(payload)
    templates = await call.services.templates.list(call.registry_id, prefixes)
    if after is not None:
        if not isinstance(after, str):
            raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
        templates = [t for t in templates if t.prefix > after]
    page = templates[:limit]
    result: dict[str, Any] = {
        "registryId": call.registry_id,
        "repositoryCreationTemplates": [t.to_json() for t in page],
    }
    if len(templates) > limit:
        result["nextToken"] = call.encode_token(page[-1].prefix)
    return result


def _destination(payload: dict[str, Any]) -> Destination:
    value = payload.get("destination")
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) for k in ("region", "registryId")
    ):
        raise errors.InvalidParameter("destination must name a region and a registryId")
    return Destination(value["region"], value["registryId"])


def _backfill_answer(call: EcrCall, backfill: Any) -> dict[str, Any]:
    body = backfill.summary()
    return {
        "replicationBackfillId": body["replicationBackfillId"],
        "registryId": call.registry_id,
        "destination": body["destination"],
        "status": body["status"],
        "startedAt": body["startedAt"],
    }


@action("StartReplicationBackfill")
async def start_replication_backfill(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    registry_id = call.use_registry(payload)
    backfills = call.services.replication.backfills
    return _backfill_answer(call, await backfills.start(registry_id, _destination(payload)))


@action("StopReplicationBackfill")
async def stop_replication_backfill(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    registry_id = call.use_registry(payload)
    backfills = call.services.replication.backfills
    backfill = await backfills.stop(registry_id, str(payload.get("replicationBackfillId")))
    return _backfill_answer(call, backfill)


@action("DescribeReplicationBackfillResults")
async def describe_replication_backfill_results(
    call: EcrCall, payload: dict[str, Any]
) -> dict[str, Any]:
    registry_id = call.use_registry(payload)
    backfills = call.services.replication.backfills
    backfill = await backfills.get(registry_id, str(payload.get("replicationBackfillId")))
    limit = call.page_size(payload)
    after = call.decode_token(payload) or 0
    if not isinstance(after, int):
        raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
    rows = await backfills.results(backfill.id, payload.get("resultStatusFilter"), after, limit + 1)
    result: dict[str, Any] = {
        **backfill.summary(),
        "registryId": registry_id,
        "progress": await backfills.progress(backfill.id),
        "results": [{k: v for k, v in row.items() if k != "_id"} for row in rows[:limit]],
    }
    if len(rows) > limit:
        result["nextToken"] = call.encode_token(rows[limit - 1]["_id"])
    return result


@action("ListReplicationBackfills")
async def list_replication_backfills(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    registry_id = call.use_registry(payload)
    backfills = call.services.replication.backfills
    limit = call.page_size(payload, maximum=50, default=50)
    after = call.decode_token(payload)
    listed = await backfills.list(registry_id)
    if after is not None:
        ids = [b.id for b in listed]
        if after not in ids:
            raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
        listed = listed[ids.index(after) + 1 :]
    page = listed[:limit]
    summaries = []
    for backfill in page:
        summary = backfill.summary()
        summary["progress"] = await backfills.progress(backfill.id)
        summaries.append(summary)
    result: dict[str, Any] = {
        "registryId": registry_id,
        "backfills": summaries,
    }
    if len(listed) > limit:
        result["nextToken"] = call.encode_token(page[-1].id)
    return result
