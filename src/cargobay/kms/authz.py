"""Authorizing `kms:*` actions with the one policy engine, the key policy as resource policy.

KMS differs from ECR in one rule: the key policy is the root of access. IAM (identity) policies
count only where the key policy lets the account delegate (a statement naming the account's
root, as the default "Enable IAM User Permissions" does); a key policy that allows nothing for
the request denies it, even to an account administrator. `kms_decide` is that rule on top of
`iam.policy.decide`; `KmsAuthorizer.require` is what a door calls before each operation:

    key = await kms.key(principal.account_id, key_id)            # or kms.key_for_ciphertext
    await kms_authorizer.require(principal, "kms:Encrypt", key, encryption_context=ctx)
    result = await kms.encrypt(principal.account_id, key_id, plaintext, ...)

CreateKey, ListKeys and ListAliases have no key: the door asks the ordinary Authorizer with
an identity-only decision (`require_identity`).

Grants (`kms.grants`) allow beside the key policy: where the policies do not allow a request
and deny nothing explicitly, a grant to the caller for the operation (its encryption-context
constraint met) allows it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from sqlalchemy import select

from cargobay.iam.authz import Authorizer, RequestContext, condition_keys
from cargobay.iam.policy import AuthRequest, Decision, Policy, decide, statement_effect
from cargobay.iam.principal import Principal
from cargobay.kms.errors import AccessDeniedException
from cargobay.kms.grants import Grant, grant_permits, grants_of
from cargobay.kms.model import KeyRecord
from cargobay.metadata import schema


def kms_decide(
    request: AuthRequest,
    identity_policies: Sequence[Policy],
    key_policy: Policy | None,
    *,
    is_account_admin: bool = False,
) -> Decision:
    """AWS's KMS decision: an explicit Deny anywhere wins; otherwise the key policy must allow
    the request (naming the principal, or its account for delegation to identity policies),
    and the engine's usual same-/cross-account rules then apply."""
    if key_policy is None:
        return "ImplicitDeny"
    verdict = decide(request, identity_policies, [key_policy], is_account_admin=is_account_admin)
    if verdict == "Deny":
        return "Deny"
    if statement_effect(key_policy, request, as_resource_policy=True) != "Allow":
        return "ImplicitDeny"
    return verdict


def kms_condition_keys(
    principal: Principal,
    key: KeyRecord,
    *,
    via_service: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
) -> dict[str, object]:
    """The KMS condition keys of a request (`kms:CallerAccount`, `kms:ViaService`,
    `kms:EncryptionContext:<k>`, `kms:EncryptionContextKeys`, `kms:KeySpec`, ...)."""
    keys: dict[str, object] = {
        "kms:CallerAccount": principal.account_id,
        "kms:KeySpec": key.key_spec,
        "kms:KeyUsage": key.key_usage,
        "kms:KeyOrigin": "AWS_KMS",
        "kms:ViaService": via_service,
    }
    context = dict(encryption_context or {})
    for name, value in context.items():
        keys[f"kms:EncryptionContext:{name}"] = value
    keys["kms:EncryptionContextKeys"] = sorted(context) or None
    for name, value in key.tag_map.items():
        keys[f"aws:ResourceTag/{name}"] = value
    return keys


class KmsAuthorizer:
    """Loads what `kms_decide` needs (the caller's identity policies, the key's policy)."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    async def _identity(self, principal: Principal) -> tuple[list[str], dict[str, str]]:
        u, up = schema.users, schema.user_policies
        async with self.authorizer.db.read_now() as conn:
            rows = (
                await conn.execute(
                    select(u.c.tags, up.c.document)
                    .select_from(u.outerjoin(up, up.c.user_id == u.c.id))
                    .where(u.c.account_id == principal.account_id, u.c.name == principal.user_name)
                )
            ).all()
        tags = json.loads(rows[0].tags) if rows and rows[0].tags else {}
        return [row.document for row in rows if row.document], tags

    async def allowed(
        self,
        principal: Principal,
        action: str,
        key: KeyRecord,
        *,
        context: RequestContext | None = None,
        via_service: str | None = None,
        encryption_context: Mapping[str, str] | None = None,
        grant_check: Callable[[Grant], bool] | None = None,
    ) -> bool:
        """`grant_check`, when given, must also hold for a grant that allows the request."""
        context = context or RequestContext()
        identity_texts, principal_tags = await self._identity(principal)
        # The KMS keys under the global ones every door builds (`iam.authz.condition_keys`):
        # no name is in both but a door's extra keys, which win, as they do there.
        keys = {
            **kms_condition_keys(
                principal, key, via_service=via_service, encryption_context=encryption_context
            ),
            **condition_keys(principal, context, principal_tags),
        }
        request = AuthRequest(
            principal_arn=principal.arn,
            principal_account=principal.account_id,
            action=action,
            resource_arn=key.arn,
            resource_account=key.account_id,
            context=keys,  # type: ignore[arg-type]
        )
        parse = self.authorizer.parse
        identity = [p for t in identity_texts if (p := parse(t, resource_policy=False))]
        key_policy = parse(key.policy_text, resource_policy=True)
        verdict = kms_decide(request, identity, key_policy, is_account_admin=principal.is_admin)
        if verdict != "ImplicitDeny":
            return verdict == "Allow"
        operation = action.removeprefix("kms:")
        return any(
            grant_permits(grant, operation, encryption_context)
            and (grant_check is None or grant_check(grant))
            for grant in await grants_of(self.authorizer.db, key.id, principal.arn)
        )

    async def require(
        self,
        principal: Principal,
        action: str,
        key: KeyRecord,
        *,
        context: RequestContext | None = None,
        via_service: str | None = None,
        encryption_context: Mapping[str, str] | None = None,
        grant_check: Callable[[Grant], bool] | None = None,
    ) -> None:
        if not await self.allowed(
            principal,
            action,
            key,
            context=context,
            via_service=via_service,
            encryption_context=encryption_context,
            grant_check=grant_check,
        ):
            raise AccessDeniedException(
                f"User: {principal.arn} is not authorized to perform: {action} on resource: "
                f"{key.arn} because no resource-based policy allows the {action} action"
            )

    async def require_identity(
        self,
        principal: Principal,
        action: str,
        region: str,
        *,
        context: RequestContext | None = None,
    ) -> None:
        """Operations that name no key (CreateKey, ListKeys, ListAliases): identity policies
        alone decide, on resource `*` of the caller's account; an administrator may."""
        if principal.is_admin:
            return
        context = context or RequestContext()
        identity_texts, _ = await self._identity(principal)
        request = AuthRequest(
            principal_arn=principal.arn,
            principal_account=principal.account_id,
            action=action,
            resource_arn="*",
            resource_account=principal.account_id,
            context={
                "aws:SourceIp": context.source_ip or None,
                "aws:username": principal.user_name,
                "aws:PrincipalAccount": principal.account_id,
                "aws:PrincipalArn": principal.arn,
                "aws:RequestedRegion": region,
                **context.extra,
            },
        )
        parse = self.authorizer.parse
        identity = [p for t in identity_texts if (p := parse(t, resource_policy=False))]
        if decide(request, identity, []) != "Allow":
            raise AccessDeniedException(
                f"User: {principal.arn} is not authorized to perform: {action} because no "
                "identity-based policy allows the action"
            )
