"""Managed signing actions: the registry's signing configuration and an image's signing status
per profile. The rules (which pushes are signed, how) are `signing.configuration`'s and
`signing.job`'s; this module only shapes requests and answers."""

from __future__ import annotations

from typing import Any

from cargobay.ecr.actions.images import resolve_image
from cargobay.ecr.api import action
from cargobay.ecr.context import EcrCall


@action("PutSigningConfiguration")
async def put_signing_configuration(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    rules = payload["signingConfiguration"]["rules"]
    stored = await call.services.signing.put_configuration(call.registry_id, rules)
    return {"signingConfiguration": {"rules": stored}}


@action("GetSigningConfiguration")
async def get_signing_configuration(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    rules = await call.services.signing.get_configuration(call.registry_id)
    return {"registryId": call.registry_id, "signingConfiguration": {"rules": rules}}


@action("DeleteSigningConfiguration")
async def delete_signing_configuration(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    rules = await call.services.signing.delete_configuration(call.registry_id)
    return {"registryId": call.registry_id, "signingConfiguration": {"rules": rules}}


@action("DescribeImageSigningStatus")
async def describe_image_signing_status(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
    repo = await call.repository(payload)
    image_id = payload["imageId"]
    digest = await resolve_image(call, repo, image_id)
    answer: dict[str, Any] = {"imageDigest": digest}
    if isinstance(image_id.get("imageTag"), str):
        answer["imageTag"] = image_id["imageTag"]
    return {
        "repositoryName": repo.name,
        "imageId": answer,
        "registryId": repo.registry_id,
        "signingStatuses": await call.services.signing.statuses(repo, digest),
    }
