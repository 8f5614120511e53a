"""Image scanning actions: scans and their findings, the registry scanning configuration, the
repositories' effective scanning configuration, and account settings. The rules (quota,
artifacts, filters) are the scan service's; this module only shapes requests and answers."""

from __future__ import annotations

from typing import Any

from cargobay.ecr import errors
from cargobay.ecr.actions.images import findings_summary, resolve_image, scan_status
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall
from cargobay.registry.repositories import Repository
from cargobay.scans import config as scan_config


def _image_id(payload: dict[str, Any]) -> dict[str, Any]:
    image_id = payload.get("imageId")
    if not isinstance(image_id, dict):
        raise errors.InvalidParameter("imageId is required")
    return image_id


async def _image(call: EcrCall, payload: dict[str, Any]) -> tuple[Repository, str, dict]:
    """The repository, the image's digest, and the imageId to answer with."""
    repo = await call.repository(payload)
    image_id = _image_id(payload)
    digest = await resolve_image(call, repo, image_id)
    answer = {"imageDigest": digest}
    if isinstance(image_id.get("imageTag"), str):
        answer["imageTag"] = image_id["imageTag"]
    return repo, digest, answer


@action("StartImageScan")
async def start_image_scan(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo, digest, image_id = await _image(call, payload)
    record = await call.services.scans.start(repo, digest)
    return {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageId": image_id,
        "imageScanStatus": scan_status(record),
    }


@action("DescribeImageScanFindings")
async def describe_image_scan_findings(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo, digest, image_id = await _image(call, payload)
    limit = call.page_size(payload, maximum=1000, default=100)
    start = call.decode_token(payload) or 0
    if not isinstance(start, int) or start < 0:
        raise errors.InvalidParameter("Invalid parameter at 'nextToken'")
    record, page, following = await call.services.scans.findings(repo, digest, start, limit)
    result: dict[str, Any] = {
        "registryId": repo.registry_id,
        "repositoryName": repo.name,
        "imageId": image_id,
        "imageScanStatus": scan_status(record),
    }
    summary = findings_summary(record)
    if summary is not None:
        result["imageScanFindings"] = {**summary, "findings": page}
        if following is not None:
            result["nextToken"] = call.encode_token(following)
    return result


@action("PutRegistryScanningConfiguration")
async def put_registry_scanning_configuration(
    call: EcrCall, payload: dict[str, Any]
) -> dict[str, Any]:
    configuration = scan_config.parse(payload)
    await call.services.scans.settings.put_configuration(call.registry_id, configuration)
    return {"registryScanningConfiguration": configuration.shape()}


@action("GetRegistryScanningConfiguration")
async def get_registry_scanning_configuration(
    call: EcrCall, payload: dict[str, Any]
) -> dict[str, Any]:
    configuration = await call.services.scans.settings.configuration(call.registry_id)
    return {"registryId": call.registry_id, "scanningConfiguration": configuration.shape()}


@action("BatchGetRepositoryScanningConfiguration")
async def batch_get_repository_scanning_configuration(
    call: EcrCall, payload: dict[str, Any]
) -> dict[str, Any]:
    names = payload.get("repositoryNames")
    if not isinstance(names, list) or not 1 <= len(names) <= 25:
        raise errors.InvalidParameter("repositoryNames must list 1 to 25 names")
    configuration = await call.services.scans.settings.configuration(call.registry_id)
    found, failures = [], []
    for name in names:
        repo = await call.services.repositories.find(call.registry_id, name)
        if repo is None:
            failures.append(
                {
                    "repositoryName": name,
                    "failureCode": "REPOSITORY_NOT_FOUND",
                    "failureReason": "REPOSITORY_NOT_FOUND",
                }
            )
            continue
        frequency, filters = configuration.frequency(repo.name, repo.scan_on_push)
        found.append(
            {
                "repositoryArn": call.repository_arn(repo.name, repo.registry_id),
                "repositoryName": repo.name,
                "scanOnPush": frequency != scan_config.MANUAL,
                "scanFrequency": frequency,
                "appliedScanFilters": [
                    {"filter": f, "filterType": scan_config.WILDCARD} for f in filters
                ],
            }
        )
    return {"scanningConfigurations": found, "failures": failures}


def _setting_name(payload: dict[str, Any]) -> str:
    name = payload.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise errors.InvalidParameter("name is required (1 to 64 characters)")
    return name


@action("GetAccountSetting")
async def get_account_setting(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    name = _setting_name(payload)
    value = await call.services.scans.settings.account_setting(call.registry_id, name)
    return {"name": name, "value": value}


@action("PutAccountSetting")
async def put_account_setting(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    name = _setting_name(payload)
    value = payload.get("value")
    if not isinstance(value, str):
        raise errors.InvalidParameter("value is required")
    await call.services.scans.settings.put_account_setting(call.registry_id, name, value)
    return {"name": name, "value": value}
