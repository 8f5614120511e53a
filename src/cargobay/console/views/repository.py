"""A repository's page: its images (DescribeImages, a page at a time), tags, digests with a
pull command, sizes, push and pull times, scan summaries, and multi-arch indexes expanded to
their platforms (BatchGetImage of the indexes on the page)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from cargobay.console import ecr
from cargobay.console.web import Visitor, page, render, services_of

PER_PAGE = 50
INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
MAX_TOKEN = 2048


def repository_name(request: web.Request) -> str:
    """The `name` query parameter (the ECR action validates it as it validates any name)."""
    return request.query.get("name", "")[:300]


def platforms(manifest_text: str) -> list[dict[str, str]]:
    """The platforms an index lists, each with its manifest digest."""
    try:
        manifests = json.loads(manifest_text).get("manifests") or []
    except (ValueError, AttributeError):
        return []
    found = []
    for entry in manifests:
        if not isinstance(entry, dict):
            continue
        platform = entry.get("platform") or {}
        label = "/".join(
            str(platform[key]) for key in ("os", "architecture", "variant") if platform.get(key)
        )
        found.append({"digest": str(entry.get("digest", "")), "platform": label or "unknown"})
    return found


@page
async def repository(request: web.Request, visitor: Visitor) -> web.Response:
    services = services_of(request)
    name = repository_name(request)
    principal = visitor.principal
    described = await ecr.call(
        request, services, principal, "DescribeRepositories", {"repositoryNames": [name]}
    )
    repo = described["repositories"][0]
    payload: dict[str, Any] = {"repositoryName": name, "maxResults": PER_PAGE}
    token = request.query.get("token")
    if token:
        payload["nextToken"] = token[:MAX_TOKEN]
    status = request.query.get("status", "ANY")
    if status in ("TAGGED", "UNTAGGED"):
        payload["filter"] = {"tagStatus": status}
    images = await ecr.call(request, services, principal, "DescribeImages", payload)
    details = sorted(images["imageDetails"], key=lambda d: d.get("imagePushedAt", 0), reverse=True)
    indexes = [d["imageDigest"] for d in details if d.get("imageManifestMediaType") in INDEX_TYPES]
    expanded: dict[str, list[dict[str, str]]] = {}
    if indexes:
        got = await ecr.call(
            request,
            services,
            principal,
            "BatchGetImage",
            {"repositoryName": name, "imageIds": [{"imageDigest": d} for d in indexes[:100]]},
        )
        for image in got["images"]:
            expanded[image["imageId"]["imageDigest"]] = platforms(image["imageManifest"])
    return render(
        request,
        "repository.html",
        title=name,
        repo=repo,
        images=details,
        expanded=expanded,
        tag_status=status,
        next_token=images.get("nextToken"),
        # The registry host of the repository's URI: the region's ECR-form host when the
        # deployment has a `host_suffix`, else the address this page was reached at.
        host=repo["repositoryUri"][: -(len(repo["repositoryName"]) + 1)],
    )
