"""Repositories: lookup, creation on first push, and the catalog."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from cargobay import regions
from cargobay.config import Settings
from cargobay.errors import (
    CacheRepositoryPush,
    RepositoryNotEmpty,
    RepositoryNotFound,
    TooManyTags,
)
from cargobay.iam.authz import Authorizer, RequestContext, Resource
from cargobay.iam.permissions import CREATE_REPOSITORY
from cargobay.iam.principal import Principal
from cargobay.metadata.db import Database
from cargobay.metadata.records import repositories as records
from cargobay.oci.names import validate_name
from cargobay.pullthrough.rules import find_rule
from cargobay.registry.encryption import key_id_of, resolve_key
from cargobay.registry.mutability import TagMutability
from cargobay.registry.mutability import load as load_mutability
from cargobay.registry.templates import TemplateService, apply_template

if TYPE_CHECKING:
    from cargobay.registry.encryption import Encryption


@dataclass(frozen=True, slots=True)
class Repository:
    id: int
    registry_id: str
    name: str
    created_at: float
    tag_mutability: str = "MUTABLE"
    scan_on_push: bool = False
    encryption_type: str = "AES256"
    kms_key: str | None = None
    mutability_exclusions: str | None = None  # JSON list of WILDCARD filters
    region_key: str = ""  # its region ("" for the default: `cargobay.regions.key`)

    @property
    def mutability(self) -> TagMutability:
        return load_mutability(self.tag_mutability, self.mutability_exclusions)

    @property
    def kms_key_id(self) -> str | None:
        """The KMS key (id) the repository's blobs and manifests are encrypted under."""
        return key_id_of(self.encryption_type, self.kms_key)


def _missing(registry_id: str, name: str) -> str:
    return (
        f"The repository with name '{name}' does not exist in the registry with id '{registry_id}'"
    )


class RepositoryService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        authorizer: Authorizer,
        encryption: Encryption | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.authorizer = authorizer
        # Creation templates (CREATE_ON_PUSH); set by Services.build.
        self.templates: TemplateService | None = None
        self.encryption = encryption

    async def find(self, registry_id: str, name: str) -> Repository | None:
        """The repository in the request's region, or None: one `metadata.hot` lookup (every
        call on a repository reads it), which sees what has been committed."""
        row = await records.find_now(self.db, registry_id, name, regions.current_key())
        if row is None:
            return None
        values = list(row)
        values[5] = bool(values[5])  # scan_on_push
        return Repository(*values)

    async def get(self, registry_id: str, name: str) -> Repository:
        validate_name(name)
        repo = await self.find(registry_id, name)
        if repo is None:
            raise RepositoryNotFound(_missing(registry_id, name), detail={"name": name})
        return repo

    async def create(
        self,
        registry_id: str,
        name: str,
        *,
        tag_mutability: str | TagMutability = "MUTABLE",
        scan_on_push: bool = False,
        encryption_type: str = "AES256",
        kms_key: str | None = None,
        tags: dict[str, str] | None = None,
        principal: Principal | None = None,
        context: RequestContext | None = None,
    ) -> tuple[Repository, bool]:
        """Create a repository; returns it and whether this call created it. A KMS
        `kms_key` (id, ARN or alias; None for `alias/aws/ecr`) is resolved and stored as the
        key's ARN (the `principal` creating it must be allowed to use the key): the encryption
        configuration never changes afterwards."""
        validate_name(name)
        if isinstance(tag_mutability, str):
            tag_mutability = TagMutability(tag_mutability)
        if encryption_type != "AES256":
            assert self.encryption is not None, "KMS encryption needs the KMS service"
            kms_key = await resolve_key(
                self.encryption.kms,
                registry_id,
                encryption_type,
                kms_key,
                principal=principal,
                authorizer=self.authorizer,
                context=context,
            )
        async with self.db.write() as conn:
            region = regions.current_key()
            created = await records.insert(
                conn,
                registry_id,
                name,
                region,
                tag_mutability=tag_mutability.mode,
                mutability_exclusions=tag_mutability.stored_exclusions(),
                scan_on_push=scan_on_push,
                encryption_type=encryption_type,
                kms_key=kms_key,
            )
            if created and tags:
                repo_id = await records.id_of(conn, registry_id, name, region)
                assert repo_id is not None
                await records.add_resource_tags(conn, repo_id, tags)
        repo = await self.find(registry_id, name)
        assert repo is not None
        return repo, created

    async def get_for_push(
        self,
        principal: Principal,
        registry_id: str,
        name: str,
        context: RequestContext | None = None,
        *,
        applied_for: str = "CREATE_ON_PUSH",
    ) -> Repository:
        """The repository a push goes to, created when missing if the account allows
        create-on-push and the caller may create repositories (every door pushes through
        here, so the rule and its authorization cannot differ between doors)."""
        validate_name(name)
        await self.check_push(registry_id, name)
        repo = await self.find(registry_id, name)
        if repo is not None:
            return repo
        replica = applied_for == "REPLICATION"  # ECR creates replicas whatever the setting
        if not replica and not await self.create_on_push(registry_id, self.settings.create_on_push):
            raise RepositoryNotFound(_missing(registry_id, name), detail={"name": name})
        resource = Resource(registry_id, regions.current(self.settings.region), name)
        await self.authorizer.require(principal, CREATE_REPOSITORY, resource, context)
        if self.templates is not None:
            return await apply_template(self, self.templates, registry_id, name, applied_for)
        return (await self.create(registry_id, name))[0]

    async def check_push(self, registry_id: str, name: str) -> None:
        """Pushes into a pull-through cache repository are refused, as ECR refuses them: its
        images come from the upstream only."""
        rule = await find_rule(self.db, registry_id, name)
        if rule is not None:
            raise CacheRepositoryPush(
                f"The repository '{name}' is a pull through cache of {rule.upstream_url} "
                f"(rule prefix '{rule.prefix}'): its images come from the upstream, and "
                "pushing into it is not supported",
                detail={"name": name, "ecrRepositoryPrefix": rule.prefix},
            )

    async def list_names(self, registry_id: str, last: str | None, limit: int | None) -> list[str]:
        """Names in lexical order after `last`; one indexed range scan."""
        async with self.db.read_now() as conn:
            return await records.list_names(conn, registry_id, last, limit, regions.current_key())

    async def list(
        self, registry_id: str, names: list[str] | None, last: str | None, limit: int | None
    ) -> list[Repository]:
        """Repositories of a registry in name order (all, or the named ones)."""
        async with self.db.read() as conn:
            rows = await records.list_rows(
                conn, registry_id, names, last, limit, regions.current_key()
            )
        return [Repository(*row) for row in rows]

    async def delete(self, repo: Repository, *, force: bool) -> None:
        """Delete a repository; without `force` only when it holds no images."""
        async with self.db.write() as conn:
            if not force and await records.has_images(conn, repo.id):
                raise RepositoryNotEmpty(
                    f"The repository with name '{repo.name}' in registry with id "
                    f"'{repo.registry_id}' cannot be deleted because it still contains images"
                )
            await records.delete(conn, repo.id)

    async def update(self, repo: Repository, **values: object) -> Repository:
        """Change settings (tag_mutability, scan_on_push, policy_text, lifecycle_policy)."""
        async with self.db.write() as conn:
            await records.update(conn, repo.id, **values)
        updated = await self.find(repo.registry_id, repo.name)
        assert updated is not None
        return updated

    async def set_tag_mutability(self, repo: Repository, setting: TagMutability) -> Repository:
        """PutImageTagMutability: the mode and its exclusion filters change together."""
        return await self.update(
            repo,
            tag_mutability=setting.mode,
            mutability_exclusions=setting.stored_exclusions(),
        )

    async def get_field(self, repo: Repository, column: str) -> str | None:
        async with self.db.read() as conn:
            return await records.field(conn, repo.id, column)

    # -- resource tags ---------------------------------------------------------------------

    async def tags(self, repo: Repository) -> dict[str, str]:
        async with self.db.read() as conn:
            return await records.resource_tags(conn, repo.id)

    async def set_tags(self, repo: Repository, tags: dict[str, str], limit: int = 50) -> None:
        async with self.db.write() as conn:
            if await records.set_resource_tags(conn, repo.id, tags) > limit:
                raise TooManyTags(f"a repository can have at most {limit} tags")

    async def remove_tags(self, repo: Repository, keys: list[str]) -> None:
        async with self.db.write() as conn:
            await records.remove_resource_tags(conn, repo.id, keys)

    # -- registry policy -------------------------------------------------------------------

    async def registry_policy(self, registry_id: str) -> str | None:
        """The registry policy of the request's region (`cargobay.regions`)."""
        async with self.db.read() as conn:
            return await records.registry_policy(conn, registry_id, regions.current_key())

    async def set_registry_policy(self, registry_id: str, text: str | None) -> bool:
        """Store (or with None, delete) the registry policy of the request's region; False if
        there was none to delete."""
        region = regions.current_key()
        async with self.db.write() as conn:
            if text is None:
                return await records.delete_registry_policy(conn, registry_id, region)
            await records.put_registry_policy(conn, registry_id, region, text)
            return True

    # -- account settings ------------------------------------------------------------------

    async def create_on_push(self, registry_id: str, default: bool) -> bool:
        """Whether a push may create a repository in this account: its own setting, else the
        deployment's default."""
        async with self.db.read_now() as conn:
            value = await records.create_on_push(conn, registry_id)
        return default if value is None else value

    async def set_create_on_push(self, registry_id: str, value: bool | None) -> None:
        """Set an account's create-on-push (None: follow the deployment's default)."""
        async with self.db.write() as conn:
            await records.set_create_on_push(conn, registry_id, value)
