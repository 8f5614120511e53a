"""Evaluating policies: one policy's effect on a request, and AWS's combined decision."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cargobay.iam.policy.document import Effect, Policy
from cargobay.iam.policy.request import AuthRequest, _Context, _is_service

Decision = Literal["Allow", "Deny", "ImplicitDeny"]


@dataclass(frozen=True, slots=True)
class _Outcome:
    deny: bool = False
    allow_direct: bool = False
    allow_account: bool = False

    @property
    def allow(self) -> bool:
        return self.allow_direct or self.allow_account


def _evaluate(
    policy: Policy, request: AuthRequest, ctx: _Context, as_resource_policy: bool
) -> _Outcome:
    allow_direct = allow_account = False
    for statement in policy.statements:
        kind = statement._applies(request, ctx, as_resource_policy)
        if kind is None:
            continue
        if statement.effect == "Deny":
            return _Outcome(deny=True)
        if kind == "direct":
            allow_direct = True
        else:
            allow_account = True
    return _Outcome(allow_direct=allow_direct, allow_account=allow_account)


def statement_effect(
    policy: Policy, request: AuthRequest, *, as_resource_policy: bool
) -> Effect | None:
    """``"Deny"`` if any statement that applies denies, else ``"Allow"`` if one allows, else None.

    With ``as_resource_policy`` a statement applies only if its ``Principal`` names the
    requester (or its ``NotPrincipal`` does not); otherwise a ``Principal``, if present, must
    still match.
    """
    outcome = _evaluate(policy, request, _Context(request), as_resource_policy)
    if outcome.deny:
        return "Deny"
    return "Allow" if outcome.allow else None


def decide(
    request: AuthRequest,
    identity_policies: Sequence[Policy],
    resource_policies: Sequence[Policy],
    *,
    is_account_admin: bool = False,
) -> Decision:
    """The AWS decision for ``request``.

    1. An explicit Deny in any identity or resource policy wins.
    2. Same account: an Allow from an identity policy (``is_account_admin`` is an identity Allow
       for everything) or from a resource policy that names the principal itself (``*``, its
       ARN) suffices. A resource policy that names only the *account* delegates to the account's
       identity policies, as in AWS, so it does not by itself admit the account's users.
    3. Cross account: both an identity Allow in the principal's account and a resource-policy
       Allow (naming the principal or its account) are needed.
    4. A service principal (``principal_arn`` such as ``codebuild.amazonaws.com``) has no
       identity policies: a resource-policy Allow naming the service suffices.
    5. Otherwise ImplicitDeny.
    """
    ctx = _Context(request)
    identity = [_evaluate(p, request, ctx, False) for p in identity_policies]
    resource = [_evaluate(p, request, ctx, True) for p in resource_policies]
    if any(o.deny for o in identity) or any(o.deny for o in resource):
        return "Deny"
    identity_allow = is_account_admin or any(o.allow for o in identity)
    resource_direct = any(o.allow_direct for o in resource)
    resource_any = any(o.allow for o in resource)
    if _is_service(request.principal_arn):
        allowed = resource_direct  # service principals have no identity policies
    elif request.principal_account != request.resource_account:
        allowed = identity_allow and resource_any
    else:
        allowed = identity_allow or resource_direct
    return "Allow" if allowed else "ImplicitDeny"
