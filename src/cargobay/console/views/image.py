"""An image's page: manifest and config as pretty JSON, layers, history, labels, referrers and
scan findings by severity. Each part is the ECR call that reads it (BatchGetImage,
GetDownloadUrlForLayer for the config blob, DescribeImageScanFindings), so a principal sees
exactly the parts it may read; a part it may not read shows the denial in place."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from cargobay.console import ecr
from cargobay.console.views.repository import platforms, repository_name
from cargobay.console.web import Visitor, page, render, services_of
from cargobay.ecr.context import EcrCall

MAX_CONFIG = 4 * 1024 * 1024  # a config blob is read whole to show it: only a bounded one
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


async def _config(
    request: web.Request, visitor: Visitor, name: str, descriptor: dict[str, Any]
) -> dict[str, Any] | None:
    """The image config JSON (read as a layer download is authorized), or None."""
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or not 0 < size <= MAX_CONFIG:
        return None
    services = services_of(request)

    async def read(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
        repo = await call.repository(payload)
        info = await services.blobs.stat(repo, digest)
        chunks = [chunk async for chunk in services.blobs.read(repo, digest, 0, size, info.size)]
        return {"config": json.loads(b"".join(chunks))}

    payload = {"repositoryName": name, "layerDigest": digest}
    try:
        result = await ecr.call(
            request, services, visitor.principal, "GetDownloadUrlForLayer", payload, body=read
        )
    except ValueError:
        return None
    return result["config"]


async def _referrers(request: web.Request, visitor: Visitor, name: str, digest: str) -> list:
    services = services_of(request)

    async def read(call: EcrCall, payload: dict[str, Any]) -> dict[str, Any]:
        repo = await call.repository(payload)
        index = json.loads(await services.manifests.referrers(repo, digest, None))
        return {"manifests": index["manifests"]}

    result = await ecr.call(
        request, services, visitor.principal, "BatchGetImage", {"repositoryName": name}, body=read
    )
    return result["manifests"]


async def _findings(request: web.Request, visitor: Visitor, name: str, digest: str) -> dict:
    """Findings grouped by severity, or the reason there are none to show."""
    payload = {"repositoryName": name, "imageId": {"imageDigest": digest}, "maxResults": 1000}
    try:
        result = await ecr.call(
            request, services_of(request), visitor.principal, "DescribeImageScanFindings", payload
        )
    except ecr.ConsoleError as exc:
        if exc.code == "ScanNotFoundException":
            return {"note": "This image has not been scanned."}
        return {"error": exc}
    found = result.get("imageScanFindings") or {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for finding in found.get("findings", []):
        groups.setdefault(str(finding.get("severity", "UNDEFINED")), []).append(finding)
    ordered = [(sev, groups[sev]) for sev in SEVERITIES if sev in groups]
    ordered += [(sev, items) for sev, items in groups.items() if sev not in SEVERITIES]
    return {
        "status": result.get("imageScanStatus", {}),
        "counts": found.get("findingSeverityCounts", {}),
        "groups": ordered,
    }


@page
async def image(request: web.Request, visitor: Visitor) -> web.Response:
    services = services_of(request)
    name = repository_name(request)
    digest = request.query.get("digest", "")[:200]
    principal = visitor.principal
    image_id = {"imageDigest": digest}
    got = await ecr.call(
        request,
        services,
        principal,
        "BatchGetImage",
        {"repositoryName": name, "imageIds": [image_id]},
    )
    if not got["images"]:
        failure = (got.get("failures") or [{}])[0]
        raise ecr.ConsoleError(
            404,
            str(failure.get("failureCode", "ImageNotFound")),
            str(failure.get("failureReason", f"No image {digest} in {name}")),
        )
    found = got["images"][0]
    manifest = json.loads(found["imageManifest"])
    described = await ecr.call(
        request,
        services,
        principal,
        "DescribeImages",
        {"repositoryName": name, "imageIds": [image_id]},
    )
    detail = described["imageDetails"][0]
    config = None
    config_error = None
    if isinstance(manifest.get("config"), dict):
        try:
            config = await _config(request, visitor, name, manifest["config"])
        except ecr.ConsoleError as exc:
            config_error = exc
    inner = (config or {}).get("config") or {}
    return render(
        request,
        "image.html",
        title=f"{name}@{digest[:19]}",
        name=name,
        digest=digest,
        detail=detail,
        media_type=found["imageManifestMediaType"],
        manifest_json=pretty(manifest),
        layers=manifest.get("layers") or [],
        platforms=platforms(found["imageManifest"]),
        config_json=pretty(config) if config is not None else None,
        config_error=config_error,
        history=(config or {}).get("history") or [],
        labels=inner.get("Labels") or {},
        referrers=await _referrers(request, visitor, name, digest),
        findings=await _findings(request, visitor, name, digest),
        pull=f"{request.host}/{name}@{digest}",
    )
