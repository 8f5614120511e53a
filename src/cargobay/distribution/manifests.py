"""`/v2/<name>/manifests/<reference>` (GET, HEAD, PUT, DELETE) and
`/v2/<name>/referrers/<digest>`: one manifest or referrers service call each."""

from __future__ import annotations

import json

from aiohttp import web

from cargobay.distribution.call import Call, read_at_most
from cargobay.errors import ImageNotFound, Unsupported
from cargobay.oci.digest import is_digest, parse_digest
from cargobay.oci.manifest import OCI_INDEX, accepts
from cargobay.oci.names import validate_tag
from cargobay.registry import ecrreads, pulls
from cargobay.registry.deletes import ImageRef
from cargobay.registry.manifests import Manifest


async def manifest(call: Call, reference: str) -> web.StreamResponse:
    method = call.request.method
    services = call.services
    if method in ("GET", "HEAD"):
        if call.pull is not None and call.pull.direct:
            # The common case: the lookup's one statement read the manifest too.
            found = await services.manifests.serve(call.pull, call.principal.arn)
        else:
            found = await _through_cache(call, reference)
        # Clients such as skopeo send one Accept header line per media type: read them all.
        accept = ", ".join(call.request.headers.getall("Accept", [])) or None
        if not accepts(accept, found.media_type):
            raise ImageNotFound(
                f"manifest is {found.media_type}, which the Accept header does not admit",
                detail={"mediaType": found.media_type},
            )
        headers = {
            "Docker-Content-Digest": found.digest,
            "Content-Type": found.media_type,
            "ETag": f'"{found.digest}"',
        }
        call.count_transfer(found.repository_id, len(found.content))
        return web.Response(body=found.content, headers=headers)
    if method == "PUT":
        digest, tag = _split_reference(reference)
        replica_of = call.replica_of()  # checked before anything is written
        # Read one byte past the limit, so the service (which owns the limit) sees the excess.
        payload = await read_at_most(call.request, services.manifests.max_manifest_bytes + 1)
        repo = await call.push_target()
        content_type = call.request.content_type if "Content-Type" in call.request.headers else None
        result = await services.manifests.put_image(
            repo,
            payload,
            content_type,
            digest,
            tag,
            origin=call.origin,
            replica_of=replica_of,
            pusher=call.principal,
        )
        headers = {
            "Location": f"/v2/{call.name}/manifests/{result.digest}",
            "Docker-Content-Digest": result.digest,
        }
        if result.subject:
            headers["OCI-Subject"] = result.subject
        return web.Response(status=201, headers=headers)
    if method == "DELETE":
        repo = await call.repo()
        if is_digest(reference):
            await services.deletes.delete_image(repo, ImageRef(digest=reference))
        else:
            await services.deletes.untag(repo, reference)
        return web.Response(status=202)
    raise Unsupported(f"{method} is not supported on manifests")


async def look_up(call: Call, reference: str) -> None:
    """A GET or HEAD's pull lookup (`registry.pulls`): the manifest, the policies that
    authorize it and whether a pull-through rule covers the repository, in one statement read
    before the dispatcher authorizes (with those policies); nothing of it is answered before.
    A PUT's push lookup reads the repository, its policies and the rule the same way
    (`registry.ecrreads`): the three statements before the push's transaction as one."""
    method = call.request.method
    if method in ("GET", "HEAD"):
        call.pull = await pulls.lookup(call.services.db, call.resource, reference, call.principal)
    elif method == "PUT" and call.resource.name is not None:
        call.push = await ecrreads.read(call.services.db, call.resource, call.principal)


async def _through_cache(call: Call, reference: str) -> Manifest:
    """Through the pull-through cache: a repository under a rule is filled from its upstream;
    any other is read from the store (a missing repository is NAME_UNKNOWN)."""
    try:
        return await call.services.pullthrough.get_manifest(
            call.principal, call.registry_id, call.name, reference, call.context()
        )
    except ImageNotFound:
        await call.repo()  # NAME_UNKNOWN when the repository itself is missing
        raise


def _split_reference(reference: str) -> tuple[str | None, str | None]:
    """(digest, tag) of a manifest PUT's reference, checked before anything is created."""
    if is_digest(reference):
        parse_digest(reference)
        return reference, None
    return None, validate_tag(reference)


async def referrers(call: Call, digest: str) -> web.StreamResponse:
    parse_digest(digest)
    repo = await call.services.repositories.find(call.registry_id, call.name)
    artifact_type = call.request.query.get("artifactType") or None
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    if repo is None:
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        return web.Response(body=body.encode(), headers={**headers, "Content-Type": OCI_INDEX})
    body_bytes = await call.services.manifests.referrers(repo, digest, artifact_type)
    return web.Response(body=body_bytes, headers={**headers, "Content-Type": OCI_INDEX})
