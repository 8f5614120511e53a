"""One authenticated `/v2/` request: who asks, which registry and repository it names, and the
helpers every `/v2/` handler shares."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from aiohttp import web

from cargobay import regions
from cargobay.config import Settings
from cargobay.distribution.auth import registry_for
from cargobay.errors import AccessDenied, InvalidParameter
from cargobay.iam import authz
from cargobay.iam.principal import Principal
from cargobay.registry import hooks
from cargobay.registry.ecrreads import EcrRead
from cargobay.registry.pulls import PullLookup
from cargobay.registry.repositories import Repository
from cargobay.registry.services import Services
from cargobay.requestinfo import request_context

SERVICES = web.AppKey("services", Services)
# Sent by another deployment's replication (replication/remote.py): this push is a replica,
# authorized as `ecr:ReplicateImage`, created from REPLICATION templates, never re-replicated.
REPLICATION_HEADER = "X-Cargobay-Replication"
# On the last manifest PUT of a replicated image (its tag, or its digest when it has none):
# the image is complete here, and this deployment emits `ECR Replication Action` for it. The
# replication header then names the source's region; the source's account is the caller's.
REPLICATED_IMAGE_HEADER = "X-Cargobay-Replicated-Image"
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-[0-9]{1,2}")
# Request key: (repository id, principal ARN, full size) of a metered GET.
USAGE = "cargobay.usage"
BLOCK_BYTES = 1024 * 1024


class Call:
    """One authenticated `/v2/` request and the repository it names."""

    def __init__(
        self, request: web.Request, services: Services, principal: Principal, name: str
    ) -> None:
        self.request = request
        self.services = services
        self.principal = principal
        self.name = name
        self.registry_id = registry_for(request, principal.account_id)
        region = serve_region(request, services.settings)
        self.resource = authz.Resource(self.registry_id, region, name or None)
        self.replication = REPLICATION_HEADER in request.headers
        # A manifest GET's one statement (distribution.manifests.look_up), read before the
        # dispatcher authorizes with the policies it holds.
        self.pull: PullLookup | None = None
        # A manifest PUT's one statement: the repository, its policies and whether a
        # pull-through rule covers it (`registry.ecrreads`), read before the dispatcher
        # authorizes with those policies; None when the long way decides.
        self.push: EcrRead | None = None

    @property
    def policies(self) -> authz.LoadedPolicies | None:
        """The policies a lookup read before the authorization (`pull` or `push`), if any."""
        if self.pull is not None:
            return self.pull.policies
        return self.push.policies if self.push is not None else None

    def context(self) -> authz.RequestContext:
        return request_context(self.request, self.services.settings.trusted_proxies)

    async def require(self, action: str, name: str | None = None) -> None:
        """A check beyond the authorization table's (the dispatcher has done that one)."""
        resource = (
            self.resource
            if name is None
            else authz.Resource(self.registry_id, self.resource.region, name)
        )
        await self.services.authorizer.require(self.principal, action, resource, self.context())

    def count_transfer(self, repository_id: int, size: int) -> None:
        """Meter a GET's bytes out; the app counts what was actually sent (ranges, 307s)."""
        if self.request.method == "GET":
            self.request[USAGE] = (repository_id, self.principal.arn, size)

    async def repo(self) -> Repository:
        return await self.services.repositories.get(self.registry_id, self.name)

    async def push_target(self) -> Repository:
        """`RepositoryService.get_for_push`: create-on-push and its authorization are the
        service's, the same for every door. When the push lookup found the repository and no
        pull-through rule covers it, that is all `get_for_push` would read."""
        if self.push is not None and not self.push.cached:
            return self.push.repository
        return await self.services.repositories.get_for_push(
            self.principal,
            self.registry_id,
            self.name,
            self.context(),
            applied_for="REPLICATION" if self.replication else "CREATE_ON_PUSH",
        )

    @property
    def origin(self) -> str:
        """Who is pushing, for the commit hooks."""
        return hooks.REPLICATION if self.replication else hooks.CLIENT

    def replica_of(self) -> hooks.ReplicaSource | None:
        """The source of a replica this manifest PUT completes, else None."""
        if not self.replication or REPLICATED_IMAGE_HEADER not in self.request.headers:
            return None
        region = self.request.headers[REPLICATION_HEADER].strip()
        if not _REGION.fullmatch(region):
            raise InvalidParameter(
                f"{REPLICATION_HEADER} must name the source's region, not {region[:64]!r}",
                detail={"header": REPLICATION_HEADER},
            )
        return hooks.ReplicaSource(self.principal.account_id, region)


def serve_region(request: web.Request, settings: Settings) -> str:
    """The region a `/v2/` request is served in (`cargobay.regions`): the one an ECR-form host
    names when `host_suffix` is set, else the one a download URL carries (`region`, beside its
    token), else the default. A region the deployment does not serve is refused."""
    region = None
    if settings.host_suffix:
        region = regions.from_host(request.host or "", settings.host_suffix)
    if region is None and "token" in request.query:
        region = request.query.get("region") or None
    if region is None:
        return settings.region
    if region not in settings.served_regions:
        raise AccessDenied(f"This registry does not serve the region {region[:64]!r}")
    regions.use(region, settings.region)
    return region


async def request_blocks(request: web.Request) -> AsyncIterator[list[bytes]]:
    """The request body in blocks of about 1 MiB, never the whole body at once."""
    block: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        block.append(chunk)
        size += len(chunk)
        if size >= BLOCK_BYTES:
            yield block
            block, size = [], 0
    if block:
        yield block


async def read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, but never more than `limit` bytes of it in memory: a longer body comes back
    cut at `limit`, and the service that owns the size rule refuses it."""
    parts: list[bytes] = []
    size = 0
    while size < limit and (chunk := await request.content.readany()):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)[:limit]
