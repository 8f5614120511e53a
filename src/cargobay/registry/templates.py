"""Repository creation templates: the settings a repository gets when replication, the
pull-through cache or a push creates it (ECR's CreateRepositoryCreationTemplate and friends).

A template applies to repositories whose name starts with its prefix followed by `/` (a prefix
`prod` covers `prod/app`); the longest matching prefix wins, and `ROOT` covers every
repository no other template covers. Each template says which creation paths it applies to.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from cargobay import regions
from cargobay.errors import LimitExceeded, TemplateAlreadyExists, TemplateNotFound
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore
from cargobay.registry.mutability import WITH_EXCLUSION, TagMutability

ROOT = "ROOT"
APPLIED_FOR = ("REPLICATION", "PULL_THROUGH_CACHE", "CREATE_ON_PUSH")
# ECR's quota of templates per registry.
MAX_TEMPLATES = 50


@dataclass(frozen=True)
class Template:
    prefix: str
    applied_for: tuple[str, ...]
    description: str | None = None
    encryption_type: str = "AES256"
    kms_key: str | None = None
    resource_tags: tuple[tuple[str, str], ...] = ()
    image_tag_mutability: str = "MUTABLE"
    mutability_exclusions: tuple[str, ...] = ()
    repository_policy: str | None = None
    lifecycle_policy: str | None = None
    custom_role_arn: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def covers(self, repository_name: str) -> bool:
        return self.prefix == ROOT or repository_name.startswith(normalize(self.prefix) + "/")

    def to_json(self) -> dict[str, Any]:
        """The RepositoryCreationTemplate shape of botocore's `ecr` model."""
        body: dict[str, Any] = {
            "prefix": self.prefix,
            "encryptionConfiguration": {"encryptionType": self.encryption_type},
            "resourceTags": [{"Key": k, "Value": v} for k, v in self.resource_tags],
            "imageTagMutability": self.image_tag_mutability,
            "appliedFor": list(self.applied_for),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }
        if self.kms_key:
            body["encryptionConfiguration"]["kmsKey"] = self.kms_key
        if self.description is not None:
            body["description"] = self.description
        if self.mutability_exclusions:
            body["imageTagMutabilityExclusionFilters"] = [
                {"filterType": "WILDCARD", "filter": f} for f in self.mutability_exclusions
            ]
        if self.repository_policy is not None:
            body["repositoryPolicy"] = self.repository_policy
        if self.lifecycle_policy is not None:
            body["lifecyclePolicy"] = self.lifecycle_policy
        if self.custom_role_arn is not None:
            body["customRoleArn"] = self.custom_role_arn
        return body


def normalize(prefix: str) -> str:
    """`prod/` and `prod` name the same namespace."""
    return prefix if prefix == ROOT else prefix.rstrip("/")


def best_match(
    templates: list[Template], repository_name: str, applied_for: str
) -> Template | None:
    """The template a new repository created by `applied_for` gets: the longest prefix that
    covers its name, else ROOT, else none."""
    candidates = [
        t for t in templates if applied_for in t.applied_for and t.covers(repository_name)
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda t: -1 if t.prefix == ROOT else len(normalize(t.prefix)))


_COLUMNS = [
    "prefix",
    "description",
    "encryption_type",
    "kms_key",
    "resource_tags",
    "image_tag_mutability",
    "mutability_exclusions",
    "repository_policy",
    "lifecycle_policy",
    "applied_for",
    "custom_role_arn",
    "created_at",
    "updated_at",
]


def _row_values(template: Template) -> dict[str, Any]:
    return {
        "prefix": normalize(template.prefix),
        "description": template.description,
        "encryption_type": template.encryption_type,
        "kms_key": template.kms_key,
        "resource_tags": json.dumps([list(p) for p in template.resource_tags]),
        "image_tag_mutability": template.image_tag_mutability,
        "mutability_exclusions": json.dumps(list(template.mutability_exclusions)),
        "repository_policy": template.repository_policy,
        "lifecycle_policy": template.lifecycle_policy,
        "applied_for": json.dumps(list(template.applied_for)),
        "custom_role_arn": template.custom_role_arn,
    }


def _from_row(row: Any) -> Template:
    return Template(
        prefix=row.prefix,
        applied_for=tuple(json.loads(row.applied_for)),
        description=row.description,
        encryption_type=row.encryption_type,
        kms_key=row.kms_key,
        resource_tags=tuple(tuple(p) for p in json.loads(row.resource_tags or "[]")),
        image_tag_mutability=row.image_tag_mutability,
        mutability_exclusions=tuple(json.loads(row.mutability_exclusions or "[]")),
        repository_policy=row.repository_policy,
        lifecycle_policy=row.lifecycle_policy,
        custom_role_arn=row.custom_role_arn,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _mine(registry_id: str) -> tuple[Any, Any]:
    """The templates of an account in the request's region."""
    t = schema.repository_creation_templates
    return t.c.registry_id == registry_id, t.c.region == regions.current_key()


class TemplateService:
    """Creation templates per account and region: each method works in the request's (or
    task's) region (`cargobay.regions`), as ECR's templates are regional."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, registry_id: str, template: Template) -> Template:
        t = schema.repository_creation_templates
        now = time.time()
        async with self.db.write() as conn:
            count = len((await conn.execute(select(t.c.prefix).where(*_mine(registry_id)))).all())
            if count >= MAX_TEMPLATES:
                raise LimitExceeded(
                    f"The maximum number of repository creation templates ({MAX_TEMPLATES}) "
                    f"has been reached for the registry '{registry_id}'"
                )
            result = await insert_ignore(
                conn,
                t,
                registry_id=registry_id,
                region=regions.current_key(),
                created_at=now,
                updated_at=now,
                **_row_values(template),
            )
            if not result.rowcount:
                raise TemplateAlreadyExists(
                    f"The repository creation template with prefix '{template.prefix}' already "
                    f"exists in the registry with id '{registry_id}'"
                )
        return await self.get(registry_id, template.prefix)

    async def get(self, registry_id: str, prefix: str) -> Template:
        t = schema.repository_creation_templates
        async with self.db.read_now() as conn:
            row = (
                await conn.execute(
                    select(*(t.c[c] for c in _COLUMNS)).where(
                        *_mine(registry_id), t.c.prefix == normalize(prefix)
                    )
                )
            ).first()
        if row is None:
            raise TemplateNotFound(
                f"The repository creation template with prefix '{prefix}' does not exist in "
                f"the registry with id '{registry_id}'"
            )
        return _from_row(row)

    async def update(self, registry_id: str, prefix: str, **changes: Any) -> Template:
        """Change the given fields (None values are left as they are, as ECR's Update does)."""
        current = await self.get(registry_id, prefix)
        values = {k: v for k, v in changes.items() if v is not None}
        updated = Template(**{**current.__dict__, **values, "prefix": current.prefix})
        t = schema.repository_creation_templates
        row = _row_values(updated)
        row.pop("prefix")
        async with self.db.write() as conn:
            result = await conn.execute(
                t.update()
                .where(*_mine(registry_id), t.c.prefix == normalize(prefix))
                .values(updated_at=time.time(), **row)
            )
            if not result.rowcount:
                raise TemplateNotFound(f"The repository creation template '{prefix}' is gone")
        return await self.get(registry_id, prefix)

    async def delete(self, registry_id: str, prefix: str) -> Template:
        current = await self.get(registry_id, prefix)
        t = schema.repository_creation_templates
        async with self.db.write() as conn:
            await conn.execute(
                t.delete().where(*_mine(registry_id), t.c.prefix == normalize(prefix))
            )
        return current

    async def list(self, registry_id: str, prefixes: list[str] | None = None) -> list[Template]:
        """Templates in prefix order (ROOT sorts as its name does)."""
        t = schema.repository_creation_templates
        query = select(*(t.c[c] for c in _COLUMNS)).where(*_mine(registry_id))
        if prefixes:
            query = query.where(t.c.prefix.in_([normalize(p) for p in prefixes]))
        async with self.db.read() as conn:
            rows = (await conn.execute(query.order_by(t.c.prefix))).all()
        return [_from_row(row) for row in rows]

    async def for_new_repository(
        self, registry_id: str, repository_name: str, applied_for: str
    ) -> Template | None:
        return best_match(await self.list(registry_id), repository_name, applied_for)


async def apply_template(
    repositories: Any, templates: TemplateService, registry_id: str, name: str, applied_for: str
) -> Any:
    """Create a repository the way `applied_for` creates it: with the settings of the
    matching template (mutability and its exclusion filters, encryption, resource tags,
    repository and lifecycle policies), or ECR's defaults when none matches. Returns the
    repository."""
    template = await templates.for_new_repository(registry_id, name, applied_for)
    if template is None:
        return (await repositories.create(registry_id, name))[0]
    exclusions = template.mutability_exclusions
    if template.image_tag_mutability not in WITH_EXCLUSION:
        exclusions = ()
    repo, created = await repositories.create(
        registry_id,
        name,
        tag_mutability=TagMutability(template.image_tag_mutability, exclusions),
        encryption_type=template.encryption_type,
        kms_key=template.kms_key or None,
        tags=dict(template.resource_tags) or None,
    )
    if created and (template.repository_policy or template.lifecycle_policy):
        repo = await repositories.update(
            repo,
            **{
                k: v
                for k, v in (
                    ("policy_text", template.repository_policy),
                    ("lifecycle_policy", template.lifecycle_policy),
                )
                if v
            },
        )
    return repo
