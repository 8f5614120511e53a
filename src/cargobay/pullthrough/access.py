"""Who may pull through a rule, and the cache repository a first pull creates: the
`ecr:BatchImportUpstreamImage` and `ecr:CreateRepository` checks ECR makes besides the pull
actions (`iam.permissions.PULL_THROUGH`), and the PULL_THROUGH_CACHE creation template."""

from __future__ import annotations

from cargobay import regions
from cargobay.config import Settings
from cargobay.iam.authz import Authorizer, RequestContext, Resource
from cargobay.iam.permissions import PULL_THROUGH
from cargobay.iam.principal import Principal
from cargobay.registry.repositories import Repository, RepositoryService
from cargobay.registry.templates import apply_template


class CacheAccess:
    def __init__(
        self, settings: Settings, authorizer: Authorizer, repositories: RepositoryService
    ) -> None:
        self.settings = settings
        self.authorizer = authorizer
        self.repositories = repositories

    async def require(
        self,
        principal: Principal,
        kind: str,
        registry_id: str,
        name: str,
        context: RequestContext | None,
    ) -> None:
        resource = Resource(registry_id, regions.current(self.settings.region), name)
        for action in PULL_THROUGH[kind].actions:
            await self.authorizer.require(principal, action, resource, context)

    async def may(
        self,
        principal: Principal,
        kind: str,
        registry_id: str,
        name: str,
        context: RequestContext | None,
    ) -> bool:
        resource = Resource(registry_id, regions.current(self.settings.region), name)
        for action in PULL_THROUGH[kind].actions:
            if not await self.authorizer.allowed(principal, action, resource, context):
                return False
        return True

    async def repository(
        self, principal: Principal, registry_id: str, name: str, context: RequestContext | None
    ) -> Repository:
        """The cache repository, created on its first pull (as the caller, who needs
        `ecr:CreateRepository`)."""
        repo = await self.repositories.find(registry_id, name)
        if repo is not None:
            return repo
        await self.require(principal, "create", registry_id, name, context)
        # A template with appliedFor PULL_THROUGH_CACHE sets mutability, encryption, tags and
        # policies; without one the repository gets ECR's defaults.
        if self.repositories.templates is None:
            return (await self.repositories.create(registry_id, name))[0]
        return await apply_template(
            self.repositories, self.repositories.templates, registry_id, name, "PULL_THROUGH_CACHE"
        )
