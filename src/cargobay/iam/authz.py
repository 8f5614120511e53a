"""The one authorization decision both front doors ask before touching the registry.

Actions are the IAM action names ECR uses (`ecr:BatchGetImage`, `ecr:PutImage`, ...), so the
`/v2/` data plane and the ECR API share one vocabulary and one policy engine. Policies are read
from the database on every decision (an indexed lookup, or, on the pull path, columns of the
statement that reads the manifest: `LoadedPolicies`), so a change made through any worker or
node applies to the next request everywhere; only parsed documents are cached, keyed by their
exact text, never a decision.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Select, bindparam, select

from cargobay import regions
from cargobay.errors import AccessDenied
from cargobay.iam import policyscope
from cargobay.iam.policy import AuthRequest, Policy, PolicyError, decide, parse_policy
from cargobay.iam.principal import Principal
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.hot import HotRead

log = logging.getLogger("cargobay.authz")


_POLICY_CACHE_SIZE = 1024


def _resource_policies_query() -> Select:
    """The repository's policy and id, the registry's policy and its scope (account setting
    REGISTRY_POLICY_SCOPE), all of the request's region, in one indexed read. Built once:
    constructing the statement cost more than running it on every request."""
    r, p = schema.repositories, schema.registry_policies
    s = schema.registry_account_settings
    account, name, region = bindparam("account_id"), bindparam("name"), bindparam("region")
    in_repo = (r.c.registry_id == account, r.c.region == region, r.c.name == name)
    return select(
        select(r.c.policy_text).where(*in_repo).scalar_subquery().label("repository_policy"),
        select(r.c.id).where(*in_repo).scalar_subquery().label("repository_id"),
        select(p.c.policy_text)
        .where(p.c.registry_id == account, p.c.region == region)
        .scalar_subquery()
        .label("registry_policy"),
        # REGISTRY_POLICY_SCOPE: under V1 the registry policy decides only a few actions.
        select(s.c.value)
        .where(s.c.registry_id == account, s.c.region == region, s.c.name == policyscope.SETTING)
        .scalar_subquery()
        .label("policy_scope"),
    )


# On the driver (`metadata.hot`): through SQLAlchemy's execution machinery this one indexed
# statement cost about 90 us of the request, on the driver about 10.
_RESOURCE_POLICIES = HotRead(_resource_policies_query())


@dataclass(frozen=True, slots=True)
class Resource:
    """A repository (or, with name None, the whole registry) in an account and region."""

    account_id: str
    region: str
    name: str | None = None

    @property
    def arn(self) -> str:
        if self.name is None:
            return f"arn:aws:ecr:{self.region}:{self.account_id}:repository/*"
        return f"arn:aws:ecr:{self.region}:{self.account_id}:repository/{self.name}"


@dataclass(frozen=True, slots=True)
class UserResource:
    """An IAM user (or, with name None, the account's users) as the IAM actions name it."""

    account_id: str
    name: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:user/{self.name or ''}"


@dataclass(frozen=True, slots=True)
class SecretResource:
    """A Secrets Manager secret by its ARN (or, with arn None, every secret: `*`)."""

    account_id: str
    arn: str = "*"


AnyResource = Resource | UserResource | SecretResource


@dataclass(frozen=True, slots=True)
class LoadedPolicies:
    """The policies of one repository (and of the caller) as the caller's own statement read
    them (the pull lookup reads them with the manifest), so the decision runs none of its own.

    `identity` (the policy documents and tags of the principal `caller_arn`) is None when
    they were not read (an administrator's never are); then they are read as usual if the
    decision needs them.
    """

    resource: Resource
    repository_id: int | None
    repository_policy: str | None
    registry_policy: str | None
    policy_scope: str | None
    identity: tuple[list[str], dict[str, str]] | None = None
    caller_arn: str | None = None


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a policy may condition on about the request itself; `extra` carries a call's own
    keys (`aws:RequestTag/<k>`, `aws:TagKeys`)."""

    source_ip: str = ""
    secure_transport: bool = False
    extra: dict[str, object] = field(default_factory=dict)


Decision = str  # "Allow", "Deny" (explicit) or "ImplicitDeny"


def condition_keys(
    principal: Principal, context: RequestContext, principal_tags: dict[str, str]
) -> dict[str, object]:
    """The global condition keys of one request, built the same way for every door."""
    keys: dict[str, object] = {
        "aws:SourceIp": context.source_ip or None,
        "aws:SecureTransport": "true" if context.secure_transport else "false",
        "aws:CurrentTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(time.time())),
        "aws:username": principal.user_name,
        "aws:PrincipalAccount": principal.account_id,
        "aws:PrincipalArn": principal.arn,
        "aws:PrincipalType": "Account" if principal.user_name == "root" else "User",
        **context.extra,
    }
    for key, value in principal_tags.items():
        keys[f"aws:PrincipalTag/{key}"] = value
    return keys


def _policy_texts(
    repository_policy: str | None,
    repository_id: int | None,
    registry_policy: str | None,
    policy_scope: str | None,
    action: str,
) -> tuple[list[str], int | None]:
    """The resource policies that apply to `action` (the registry's only within its scope),
    and the repository's id."""
    registry = registry_policy if policyscope.applies(policy_scope, action) else None
    return [t for t in (repository_policy, registry) if t], repository_id


class Authorizer:
    """Evaluates identity, repository and registry policies with AWS semantics.

    An account's administrator acts like the account root: allowed everything in its own
    account unless a policy explicitly denies it.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._parsed: dict[tuple[str, bool], Policy] = {}
        # (account, secret ARN) -> the secret's resource policy; set by the secrets service.
        self.secret_policies: Callable[[str, str], Awaitable[str | None]] | None = None

    def parse(self, text: str, *, resource_policy: bool) -> Policy | None:
        key = (text, resource_policy)
        policy = self._parsed.get(key)
        if policy is None:
            try:
                # Stored policies were checked when written (ECR's allow repeated Sids).
                policy = parse_policy(text, resource_policy=resource_policy, unique_sids=False)
            except PolicyError:
                log.error("ignoring a stored policy that no longer parses")
                return None
            if len(self._parsed) >= _POLICY_CACHE_SIZE:
                self._parsed.clear()
            self._parsed[key] = policy
        return policy

    async def _resource_policies(
        self, resource: Resource, action: str
    ) -> tuple[list[str], int | None]:
        """Read for a call whose statement did not read them (`LoadedPolicies`)."""
        # The repository in the request's region (`cargobay.regions`).
        params = {
            "account_id": resource.account_id,
            "region": regions.current_key(),
            "name": resource.name,
        }
        found = await _RESOURCE_POLICIES.first(self.db, params)
        assert found is not None  # a SELECT of scalar subqueries: always one row
        return _policy_texts(*found, action)

    async def _identity(self, principal: Principal) -> tuple[list[str], dict[str, str]]:
        u, up = schema.users, schema.user_policies
        async with self.db.read_now() as conn:
            rows = (
                await conn.execute(
                    select(u.c.tags, up.c.document)
                    .select_from(u.outerjoin(up, up.c.user_id == u.c.id))
                    .where(u.c.account_id == principal.account_id, u.c.name == principal.user_name)
                )
            ).all()
        tags = json.loads(rows[0].tags) if rows and rows[0].tags else {}
        return [row.document for row in rows if row.document], tags

    async def _resource_tags(self, repository_id: int) -> dict[str, str]:
        t = schema.repository_tags
        async with self.db.read_now() as conn:
            rows = await conn.execute(
                select(t.c.key, t.c.value).where(t.c.repository_id == repository_id)
            )
            return {row.key: row.value for row in rows}

    async def _user_tags(self, account_id: str, name: str) -> dict[str, str]:
        u = schema.users
        async with self.db.read_now() as conn:
            raw = (
                await conn.execute(
                    select(u.c.tags).where(u.c.account_id == account_id, u.c.name == name)
                )
            ).scalar_one_or_none()
        return json.loads(raw) if raw else {}

    async def decide(
        self,
        principal: Principal,
        action: str,
        resource: AnyResource,
        context: RequestContext | None = None,
        loaded: LoadedPolicies | None = None,
    ) -> Decision:
        """The one decision every door asks: identity, repository, registry and secret
        policies with AWS semantics, over condition keys built once here. With `loaded`, the
        policies of that repository (and the caller's, if read) come from the caller's
        statement instead of one of the decision's own."""
        context = context or RequestContext()
        resource_texts: list[str] = []
        repository_id = None
        if isinstance(resource, Resource):
            if loaded is not None and (loaded.resource is resource or loaded.resource == resource):
                # Read by the call's own statement: no lookup, no coroutine.
                resource_texts, repository_id = _policy_texts(
                    loaded.repository_policy,
                    loaded.repository_id,
                    loaded.registry_policy,
                    loaded.policy_scope,
                    action,
                )
            else:
                resource_texts, repository_id = await self._resource_policies(resource, action)
        elif isinstance(resource, SecretResource) and resource.arn != "*" and self.secret_policies:
            text = await self.secret_policies(resource.account_id, resource.arn)
            resource_texts = [text] if text else []
        if principal.is_admin and not resource_texts:
            # The common case: an administrator in its own account with no resource policy.
            return "Allow" if principal.account_id == resource.account_id else "ImplicitDeny"
        identity_texts: list[str] = []
        principal_tags: dict[str, str] = {}
        if not principal.is_admin:
            if loaded and loaded.identity is not None and loaded.caller_arn == principal.arn:
                identity_texts, principal_tags = loaded.identity
            else:
                identity_texts, principal_tags = await self._identity(principal)
        keys = condition_keys(principal, context, principal_tags)
        wants_tags = any("resourcetag/" in t.lower() for t in (*resource_texts, *identity_texts))
        if wants_tags and repository_id is not None:
            for key, value in (await self._resource_tags(repository_id)).items():
                keys[f"ecr:ResourceTag/{key}"] = value
                keys[f"aws:ResourceTag/{key}"] = value
        if wants_tags and isinstance(resource, UserResource) and resource.name:
            for key, value in (await self._user_tags(resource.account_id, resource.name)).items():
                keys[f"aws:ResourceTag/{key}"] = value
                keys[f"iam:ResourceTag/{key}"] = value
        request = AuthRequest(
            principal_arn=principal.arn,
            principal_account=principal.account_id,
            action=action,
            resource_arn=resource.arn,
            resource_account=resource.account_id,
            context=keys,
        )
        identity = [p for t in identity_texts if (p := self.parse(t, resource_policy=False))]
        resources = [p for t in resource_texts if (p := self.parse(t, resource_policy=True))]
        return decide(request, identity, resources, is_account_admin=principal.is_admin)

    async def allowed(
        self,
        principal: Principal,
        action: str,
        resource: AnyResource,
        context: RequestContext | None = None,
        loaded: LoadedPolicies | None = None,
    ) -> bool:
        return await self.decide(principal, action, resource, context, loaded) == "Allow"

    async def require(
        self,
        principal: Principal,
        action: str,
        resource: AnyResource,
        context: RequestContext | None = None,
        loaded: LoadedPolicies | None = None,
    ) -> None:
        decision = await self.decide(principal, action, resource, context, loaded)
        if decision == "Allow":
            return
        log.warning("denied %s on %s to %s", action, resource.arn, principal.arn)
        if decision == "Deny":
            why = "with an explicit deny in " + (
                "an identity-based policy" if isinstance(resource, UserResource) else "a policy"
            )
        else:
            why = f"because no identity-based policy allows the {action} action"
        raise AccessDenied(
            f"User: {principal.arn} is not authorized to perform: {action} on resource: "
            f"{resource.arn} {why}"
        )


def role_decision(
    role_arn: str,
    account_id: str,
    role_policy: str,
    action: str,
    resource_arn: str,
    resource_policy: str | None,
) -> Decision:
    """The decision for a service-linked role acting in its own account (no IAM user: its
    identity policy is given), with the resource's own policy: how the pull-through cache
    reads a rule's credential secret. A stored policy that no longer parses is ignored, as
    `Authorizer.parse` ignores it."""
    request = AuthRequest(
        principal_arn=role_arn,
        principal_account=account_id,
        action=action,
        resource_arn=resource_arn,
        resource_account=account_id,
        context={},
    )
    resources = []
    if resource_policy:
        try:
            resources.append(parse_policy(resource_policy, resource_policy=True, unique_sids=False))
        except PolicyError:
            log.error("ignoring a stored policy that no longer parses")
    return decide(
        request, [parse_policy(role_policy, resource_policy=False, unique_sids=False)], resources
    )
