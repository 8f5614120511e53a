"""Pull-through cache rules as ECR shapes them: a repository prefix (`ecrRepositoryPrefix`)
mapped to an upstream registry, optionally with a credential secret, 50 per registry.

Prefix rules (ECR's): 2 to 30 characters of the repository-name grammar, a trailing `/`
ignored; `ROOT` (every repository) only for an `ecr` upstream. A repository belongs to the
rule whose prefix is the longest one it starts with (followed by `/`). The upstream repository
is the rest of the name, under `upstreamRepositoryPrefix` when the rule has one.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select

from cargobay import regions
from cargobay.errors import (
    AccessDenied,
    InvalidParameter,
    LimitExceeded,
    PullThroughCacheRuleAlreadyExists,
    PullThroughCacheRuleNotFound,
    SecretNotFound,
    UnableToAccessSecret,
    UnableToDecryptSecretValue,
    UnsupportedUpstreamRegistry,
)
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead
from cargobay.metadata.sql import insert_ignore
from cargobay.secrets import errors as secret_errors
from cargobay.secrets.pullthrough import CredentialSecretInvalid, pull_through_credentials
from cargobay.secrets.service import SecretsService
from cargobay.upstream.auth import Credentials
from cargobay.upstream.errors import InvalidUpstreamUrl
from cargobay.upstream.urls import parse_upstream_url

ROOT = "ROOT"
MAX_RULES = 50
_PREFIX = re.compile(
    r"^([a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*\/?|ROOT)$"
)
_CREDENTIAL_ARN = re.compile(
    r"^arn:aws(-\w+)*:secretsmanager:[a-zA-Z0-9-:]+:secret:ecr\-pullthroughcache\/"
    r"[a-zA-Z0-9\/_+=.@-]+$"
)
# botocore's UpstreamRegistry enum; `chainguard` is in the model but not offered here.
MODEL_KINDS = frozenset(
    {"ecr", "ecr-public", "quay", "k8s", "docker-hub", "github-container-registry",
     "azure-container-registry", "gitlab-container-registry", "chainguard"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rule:
    registry_id: str
    prefix: str
    upstream_url: str
    upstream_registry: str  # a botocore enum value, or "oci" for any other OCI registry
    upstream_prefix: str | None
    credential_arn: str | None
    custom_role_arn: str | None
    created_at: float
    updated_at: float

    def covers(self, name: str) -> bool:
        return self.prefix == ROOT or name.startswith(self.prefix + "/")

    def upstream_name(self, name: str) -> str:
        """The upstream repository a cache repository `name` mirrors."""
        rest = name if self.prefix == ROOT else name[len(self.prefix) + 1 :]
        if self.upstream_prefix and self.upstream_prefix != ROOT:
            return f"{self.upstream_prefix}/{rest}"
        return rest

    def describe(self) -> dict[str, Any]:
        """The rule as botocore's PullThroughCacheRule shape (no enum value for `oci`)."""
        out: dict[str, Any] = {
            "ecrRepositoryPrefix": self.prefix,
            "upstreamRegistryUrl": self.upstream_url,
            "createdAt": self.created_at,
            "registryId": self.registry_id,
            "updatedAt": self.updated_at,
        }
        if self.upstream_registry != "oci":
            out["upstreamRegistry"] = self.upstream_registry
        if self.credential_arn:
            out["credentialArn"] = self.credential_arn
        if self.custom_role_arn:
            out["customRoleArn"] = self.custom_role_arn
        if self.upstream_prefix:
            out["upstreamRepositoryPrefix"] = self.upstream_prefix
        return out


def check_prefix(value: Any, member: str = "ecrRepositoryPrefix") -> str:
    if not isinstance(value, str) or not 2 <= len(value) <= 30 or not _PREFIX.fullmatch(value):
        raise InvalidParameter(
            f"Invalid parameter at '{member}' failed to satisfy constraint: 'must be 2 to 30 "
            "characters of lowercase letters, digits and . _ - / separators, or ROOT'"
        )
    return value.rstrip("/")


def check_credential_arn(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 50 <= len(value) <= 612:
        raise InvalidParameter("credentialArn must be 50 to 612 characters long")
    if not _CREDENTIAL_ARN.fullmatch(value):
        raise InvalidParameter(
            "credentialArn must be a Secrets Manager secret ARN whose name starts with "
            "ecr-pullthroughcache/"
        )
    return value


def _row_rule(row: Any) -> Rule:
    return Rule(*row)


_COLUMNS = [
    schema.pull_through_cache_rules.c[name]
    for name in ("registry_id", "prefix", "upstream_url", "upstream_registry", "upstream_prefix",
                 "credential_arn", "custom_role_arn", "created_at", "updated_at")
]  # fmt: skip


# Built once: every push asks whether a rule covers its repository. Rules are per account and
# region (`region`: its key, `cargobay.regions.key`), as in ECR.
_OF_REGISTRY = select(*_COLUMNS).where(
    schema.pull_through_cache_rules.c.registry_id == bindparam("registry_id"),
    schema.pull_through_cache_rules.c.region == bindparam("region"),
)


# Every upload's start asks it too (InitiateLayerUpload, a `/v2/` POST): one hot lookup.
_OF_REGISTRY_NOW = HotRead(_OF_REGISTRY)


def _params(registry_id: str, region: str | None) -> dict[str, str]:
    return {
        "registry_id": registry_id,
        "region": regions.current_key() if region is None else region,
    }


async def find_rule(
    db: Database, registry_id: str, name: str, region: str | None = None
) -> Rule | None:
    """The rule a repository name falls under (the longest prefix) in a region (its key;
    default the request's), or None."""
    return _longest(await _OF_REGISTRY_NOW.all(db, _params(registry_id, region)), name)


async def rule_for(
    conn: Any, registry_id: str, name: str, region: str | None = None
) -> Rule | None:
    """`find_rule` on an open connection (inside a push's transaction, for its event)."""
    return _longest((await conn.execute(_OF_REGISTRY, _params(registry_id, region))).all(), name)


def _longest(rows: Any, name: str) -> Rule | None:
    rules = [r for r in map(_row_rule, rows) if r.covers(name)]
    return max(rules, key=lambda r: -1 if r.prefix == ROOT else len(r.prefix), default=None)


class RuleService:
    def __init__(self, db: Database, secrets: SecretsService) -> None:
        self.db = db
        self.secrets = secrets

    async def credentials(self, rule: Rule) -> Credentials | None:
        """The upstream credentials of a rule's secret, as domain errors when unusable."""
        if not rule.credential_arn:
            return None
        try:
            return await pull_through_credentials(
                self.secrets, rule.registry_id, rule.credential_arn
            )
        except AccessDenied as exc:  # the secret's resource policy denies ECR's role
            raise UnableToAccessSecret(
                f"The secret {rule.credential_arn} cannot be used: {exc.message}"
            ) from None
        except secret_errors.ResourceNotFoundException:
            raise SecretNotFound(f"The secret {rule.credential_arn} was not found.") from None
        except secret_errors.DecryptionFailure:
            raise UnableToDecryptSecretValue(
                f"The value of secret {rule.credential_arn} cannot be decrypted."
            ) from None
        except (CredentialSecretInvalid, secret_errors.SecretsError) as exc:
            raise UnableToAccessSecret(
                f"The secret {rule.credential_arn} cannot be used: {exc.message}"
            ) from None

    async def get(self, registry_id: str, prefix: Any) -> Rule:
        prefix = check_prefix(prefix)
        t = schema.pull_through_cache_rules
        async with self.db.read_now() as conn:
            row = (
                await conn.execute(
                    select(*_COLUMNS).where(
                        t.c.registry_id == registry_id,
                        t.c.region == regions.current_key(),
                        t.c.prefix == prefix,
                    )
                )
            ).first()
        if row is None:
            raise PullThroughCacheRuleNotFound(
                f"The pull-through cache rule with prefix '{prefix}' does not exist in the "
                f"registry with id '{registry_id}'",
                detail={"prefix": prefix},
            )
        return _row_rule(row)

    async def list(self, registry_id: str, prefixes: list[str] | None = None) -> list[Rule]:
        t = schema.pull_through_cache_rules
        query = (
            select(*_COLUMNS)
            .where(t.c.registry_id == registry_id, t.c.region == regions.current_key())
            .order_by(t.c.prefix)
        )
        if prefixes:
            query = query.where(t.c.prefix.in_(prefixes))
        async with self.db.read() as conn:
            rules = [_row_rule(row) for row in (await conn.execute(query)).all()]
        missing = set(prefixes or ()) - {r.prefix for r in rules}
        if missing:
            raise PullThroughCacheRuleNotFound(
                f"The pull-through cache rule with prefix '{sorted(missing)[0]}' does not exist "
                f"in the registry with id '{registry_id}'"
            )
        return rules

    async def create(
        self,
        registry_id: str,
        *,
        prefix: Any,
        upstream_url: Any,
        upstream_registry: Any = None,
        credential_arn: Any = None,
        custom_role_arn: Any = None,
        upstream_prefix: Any = None,
    ) -> Rule:
        prefix = check_prefix(prefix)
        if upstream_prefix is not None:
            upstream_prefix = check_prefix(upstream_prefix, "upstreamRepositoryPrefix")
        if upstream_registry is not None and upstream_registry not in MODEL_KINDS:
            raise InvalidParameter(f"upstreamRegistry {upstream_registry!r} is not a valid value")
        if not isinstance(upstream_url, str):
            raise InvalidParameter("upstreamRegistryUrl is required")
        try:
            upstream = parse_upstream_url(upstream_url, upstream_registry)
        except InvalidUpstreamUrl as exc:
            raise UnsupportedUpstreamRegistry(str(exc)) from None
        if custom_role_arn is not None and (
            not isinstance(custom_role_arn, str) or len(custom_role_arn) > 2048
        ):
            raise InvalidParameter("customRoleArn must be at most 2048 characters")
        if prefix == ROOT and upstream.kind != "ecr":
            raise InvalidParameter("The ROOT prefix is only supported for ecr upstreams")
        credential_arn = check_credential_arn(credential_arn)
        if upstream.requires_credentials and credential_arn is None:
            raise InvalidParameter(f"A credentialArn is required for {upstream.kind} upstreams")
        now = time.time()
        rule = Rule(
            registry_id, prefix, upstream.url, upstream.kind, upstream_prefix, credential_arn,
            custom_role_arn, now, now,
        )  # fmt: skip
        await self.credentials(rule)  # the secret must exist and be usable now, as in ECR
        t = schema.pull_through_cache_rules
        async with self.db.write() as conn:
            count = len(
                (
                    await conn.execute(
                        select(t.c.prefix).where(
                            t.c.registry_id == registry_id, t.c.region == regions.current_key()
                        )
                    )
                )
                .scalars()
                .all()
            )
            if count >= MAX_RULES:
                raise LimitExceeded(
                    f"The maximum number of pull-through cache rules ({MAX_RULES}) is reached"
                )
            result = await insert_ignore(
                conn,
                t,
                registry_id=registry_id,
                region=regions.current_key(),
                prefix=prefix,
                upstream_url=upstream.url,
                upstream_registry=upstream.kind,
                upstream_prefix=upstream_prefix,
                credential_arn=credential_arn,
                custom_role_arn=custom_role_arn,
                created_at=now,
                updated_at=now,
            )
            if not result.rowcount:
                raise PullThroughCacheRuleAlreadyExists(
                    f"A pull-through cache rule with prefix '{prefix}' already exists in the "
                    f"registry with id '{registry_id}'"
                )
        return rule

    async def update(
        self, registry_id: str, prefix: Any, *, credential_arn: Any, custom_role_arn: Any
    ) -> Rule:
        rule = await self.get(registry_id, prefix)
        credential_arn = check_credential_arn(credential_arn)
        if credential_arn is None and custom_role_arn is None:
            raise InvalidParameter("Give a credentialArn or a customRoleArn to update")
        values: dict[str, Any] = {"updated_at": time.time()}
        if credential_arn is not None:
            values["credential_arn"] = credential_arn
        if custom_role_arn is not None:
            values["custom_role_arn"] = custom_role_arn
        updated = Rule(**{**_as_dict(rule), **values})
        await self.credentials(updated)
        t = schema.pull_through_cache_rules
        async with self.db.write() as conn:
            await conn.execute(
                t.update()
                .where(
                    t.c.registry_id == registry_id,
                    t.c.region == regions.current_key(),
                    t.c.prefix == rule.prefix,
                )
                .values(**values)
            )
        return updated

    async def delete(self, registry_id: str, prefix: Any) -> Rule:
        rule = await self.get(registry_id, prefix)
        t = schema.pull_through_cache_rules
        async with self.db.write() as conn:
            await conn.execute(
                t.delete().where(
                    t.c.registry_id == registry_id,
                    t.c.region == regions.current_key(),
                    t.c.prefix == rule.prefix,
                )
            )
        return rule


def _as_dict(rule: Rule) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in Rule.__slots__}
