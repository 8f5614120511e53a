"""Repository settings: tag mutability, scan on push, the lifecycle policy (previewed with
StartLifecyclePolicyPreview before it is saved) and the repository policy, each change the ECR
action it is. Controls show only for actions the principal is allowed; a failed change shows
its message next to the field it concerns, with what was typed kept."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from cargobay.console import ecr
from cargobay.console.views.repository import repository_name
from cargobay.console.web import PREFIX, Visitor, page, redirect, render, services_of

EDIT_ACTIONS = (
    "PutImageTagMutability",
    "PutImageScanningConfiguration",
    "PutLifecyclePolicy",
    "StartLifecyclePolicyPreview",
    "DeleteLifecyclePolicy",
    "SetRepositoryPolicy",
    "DeleteRepositoryPolicy",
)
MAX_TEXT = 30_720  # ECR's lifecycle and repository policy text limits are at most this


async def _stored(
    request: web.Request, visitor: Visitor, operation: str, name: str, key: str
) -> tuple[str, ecr.ConsoleError | None]:
    """A stored policy's text ("" when there is none), or the error that hid it."""
    try:
        result = await ecr.call(
            request, services_of(request), visitor.principal, operation, {"repositoryName": name}
        )
    except ecr.ConsoleError as exc:
        return "", None if exc.status == 404 else exc
    return str(result.get(key, "")), None


async def _page(
    request: web.Request, visitor: Visitor, name: str, status: int = 200, **context: Any
) -> web.Response:
    services = services_of(request)
    principal = visitor.principal
    described = await ecr.call(
        request, services, principal, "DescribeRepositories", {"repositoryNames": [name]}
    )
    lifecycle, lifecycle_read_error = await _stored(
        request, visitor, "GetLifecyclePolicy", name, "lifecyclePolicyText"
    )
    policy, policy_read_error = await _stored(
        request, visitor, "GetRepositoryPolicy", name, "policyText"
    )
    repo = described["repositories"][0]
    try:
        tags: Any = await ecr.call(
            request,
            services,
            principal,
            "ListTagsForResource",
            {"resourceArn": repo["repositoryArn"]},
        )
    except ecr.ConsoleError as exc:
        tags = exc
    can = {
        op: await ecr.allowed(request, services, principal, f"ecr:{op}", name)
        for op in EDIT_ACTIONS
    }
    values = {"lifecycle": lifecycle, "policy": policy, **context.pop("values", {})}
    return render(
        request,
        "settings.html",
        status=status,
        title=f"{name} settings",
        repo=repo,
        tags=tags,
        values=values,
        stored={"lifecycle": lifecycle, "policy": policy},
        read_errors={"lifecycle": lifecycle_read_error, "policy": policy_read_error},
        can=can,
        errors=context.pop("errors", {}),
        saved=request.query.get("saved", ""),
        **context,
    )


@page
async def settings(request: web.Request, visitor: Visitor) -> web.Response:
    return await _page(request, visitor, repository_name(request))


def _text(form: Any, field: str) -> str:
    value = form.get(field, "")
    return value[: MAX_TEXT + 1] if isinstance(value, str) else ""


@page
async def change(request: web.Request, visitor: Visitor) -> web.Response:
    """One settings form's POST: the ECR call it stands for, then back to the page."""
    name = repository_name(request)
    form = await request.post()
    what = form.get("action")
    services = services_of(request)
    lifecycle, policy = _text(form, "lifecycle"), _text(form, "policy")
    calls: dict[str, tuple[str, str, dict[str, Any]]] = {
        "mutability": (
            "mutability",
            "PutImageTagMutability",
            {"imageTagMutability": form.get("imageTagMutability", "")},
        ),
        "scanning": (
            "scanning",
            "PutImageScanningConfiguration",
            {"imageScanningConfiguration": {"scanOnPush": form.get("scanOnPush") == "on"}},
        ),
        "lifecycle-save": ("lifecycle", "PutLifecyclePolicy", {"lifecyclePolicyText": lifecycle}),
        "lifecycle-delete": ("lifecycle", "DeleteLifecyclePolicy", {}),
        "policy-save": ("policy", "SetRepositoryPolicy", {"policyText": policy}),
        "policy-delete": ("policy", "DeleteRepositoryPolicy", {}),
    }
    values = {"lifecycle": lifecycle, "policy": policy}
    if what == "lifecycle-preview":
        return await _preview(request, visitor, name, lifecycle)
    if what not in calls:
        raise ecr.ConsoleError(400, "InvalidParameterException", "Unknown settings action.")
    section, operation, payload = calls[str(what)]
    try:
        await ecr.call(
            request, services, visitor.principal, operation, {"repositoryName": name, **payload}
        )
    except ecr.ConsoleError as exc:
        return await _page(
            request, visitor, name, status=exc.status, values=values, errors={section: exc}
        )
    return redirect(f"{PREFIX}/settings?name={quote(name, safe='')}&saved={section}#{section}")


async def _preview(request: web.Request, visitor: Visitor, name: str, text: str) -> web.Response:
    """What `text` would expire now, before it is saved (the policy is not stored)."""
    services, principal = services_of(request), visitor.principal
    values = {"lifecycle": text}
    try:
        await ecr.call(
            request,
            services,
            principal,
            "StartLifecyclePolicyPreview",
            {"repositoryName": name, "lifecyclePolicyText": text},
        )
        result = await ecr.call(
            request,
            services,
            principal,
            "GetLifecyclePolicyPreview",
            {"repositoryName": name, "maxResults": 100},
        )
    except ecr.ConsoleError as exc:
        return await _page(
            request, visitor, name, status=exc.status, values=values, errors={"lifecycle": exc}
        )
    return await _page(request, visitor, name, values=values, preview=result)
