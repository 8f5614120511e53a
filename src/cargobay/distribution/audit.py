"""The audit record of a `/v2/` request the dispatcher audits (`audit.hooks.v2_event` says
which: writes always, pulls with `audit_pulls`), with its parameters named as ECR names them."""

from __future__ import annotations

from aiohttp import web

from cargobay.audit.hooks import V2_SOURCE, audit_call
from cargobay.audit.record import Resource
from cargobay.distribution.call import Call
from cargobay.oci.digest import is_digest


async def audit_v2(
    call: Call,
    audited: tuple[str, bool],
    params: dict[str, str],
    response: web.StreamResponse,
    error: str | None,
    message: str | None,
) -> None:
    """The audit record of a `/v2/` write (or, with `audit_pulls`, a pull)."""
    event_name, pull = audited
    request = call.request
    parameters: dict[str, str] = {"repositoryName": call.name}
    reference = params.get("reference")
    if reference is not None:
        parameters["imageDigest" if is_digest(reference) else "imageTag"] = reference
    for key in ("digest", "upload_id"):
        if key in params:
            parameters["uploadId" if key == "upload_id" else "digest"] = params[key]
    for key in ("digest", "mount", "from"):
        if key in request.query:
            parameters[key] = request.query[key]
    if event_name == "PutManifest" and "Content-Type" in request.headers:
        parameters["mediaType"] = request.content_type
    digest = response.headers.get("Docker-Content-Digest")
    key = "imageDigest" if params.get("reference") is not None else "digest"
    region, account = call.resource.region, call.registry_id
    arn = f"arn:aws:ecr:{region}:{account}:repository/{call.name}"
    await audit_call(
        request,
        call.services,
        event_source=V2_SOURCE,
        event_name=event_name,
        account_id=call.principal.account_id,
        principal=call.principal,
        request_parameters=parameters,
        response_elements={key: digest} if digest else None,
        error_code=error,
        error_message=message,
        resources=[Resource("AWS::ECR::Repository", call.name, arn)],
        pull=pull,
        owner_account_id=call.registry_id,
    )
