"""The question a policy answers (:class:`AuthRequest`) and its condition-key context.

:class:`_Context` fills in the global keys AWS derives from the request and the clock
(``aws:PrincipalArn``, ``aws:username``, ``aws:CurrentTime``, ...), once per decision.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cargobay.iam.principal import Principal

ContextValue = str | list[str] | bool | None

_ARN_ROOT_RE = re.compile(r"arn:[a-z0-9-]+:iam::([0-9]{12}):root")
_USER_ARN_RE = re.compile(r"arn:[a-z0-9-]+:iam::[0-9]{12}:user/(?:.*/)?([^/]+)")
_ASSUMED_ROLE_RE = re.compile(r"arn:([a-z0-9-]+):sts::([0-9]{12}):assumed-role/([^/]+)/.+")


@dataclass(frozen=True)
class AuthRequest:
    """One question: may ``principal_arn`` perform ``action`` on ``resource_arn``?

    ``context`` holds the request's condition keys (case-insensitive names): ``aws:SourceIp``,
    ``aws:SecureTransport`` (``"true"``/``"false"`` or a bool), ``aws:CurrentTime`` (ISO 8601),
    ``aws:PrincipalTag/<k>``, ``ecr:ResourceTag/<k>``, ``aws:TagKeys`` (a list), ... A ``None``
    value means the key is absent. ``aws:PrincipalArn``, ``aws:PrincipalAccount``,
    ``aws:ResourceAccount``, ``aws:PrincipalType``, ``aws:username`` (for IAM users),
    ``aws:CurrentTime`` and ``aws:EpochTime`` are filled in from the request and the clock when
    the context does not supply them.
    """

    principal_arn: str
    principal_account: str
    action: str
    resource_arn: str
    resource_account: str
    context: Mapping[str, ContextValue] = field(default_factory=dict)

    @classmethod
    def from_principal(
        cls,
        principal: Principal,
        action: str,
        resource_arn: str,
        resource_account: str,
        context: Mapping[str, ContextValue] | None = None,
    ) -> AuthRequest:
        return cls(
            principal_arn=principal.arn,
            principal_account=principal.account_id,
            action=action,
            resource_arn=resource_arn,
            resource_account=resource_account,
            context=dict(context or {}),
        )


def _is_service(principal_arn: str) -> bool:
    """A service principal (``codebuild.amazonaws.com``) rather than an IAM identity ARN."""
    return not principal_arn.startswith("arn:")


def _context_scalar(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class _Context:
    """The request context with lower-cased key names and string (or tuple-of-string) values."""

    __slots__ = ("values",)

    def __init__(self, request: AuthRequest) -> None:
        values: dict[str, str | tuple[str, ...]] = {}
        for key, raw in request.context.items():
            if isinstance(raw, list | tuple | set | frozenset):
                values[key.lower()] = tuple(
                    s for s in (_context_scalar(v) for v in raw) if s is not None
                )
            else:
                scalar = _context_scalar(raw)
                if scalar is not None:
                    values[key.lower()] = scalar
        arn = request.principal_arn
        if _is_service(arn):
            values.setdefault("aws:principalservicename", arn)
        else:
            values.setdefault("aws:principalarn", arn)
        if request.principal_account:
            values.setdefault("aws:principalaccount", request.principal_account)
        if request.resource_account:
            values.setdefault("aws:resourceaccount", request.resource_account)
        user = _USER_ARN_RE.fullmatch(arn)
        if user:
            values.setdefault("aws:username", user.group(1))
            values.setdefault("aws:principaltype", "User")
        elif _ARN_ROOT_RE.fullmatch(arn):
            values.setdefault("aws:principaltype", "Account")
        elif _ASSUMED_ROLE_RE.fullmatch(arn):
            values.setdefault("aws:principaltype", "AssumedRole")
        if "aws:currenttime" not in values or "aws:epochtime" not in values:
            now = datetime.now(UTC).replace(microsecond=0)
            values.setdefault("aws:currenttime", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
            values.setdefault("aws:epochtime", str(int(now.timestamp())))
        self.values = values

    def get(self, key: str) -> str | tuple[str, ...] | None:
        """The value of ``key`` (already lower-cased), or None when absent or empty."""
        value = self.values.get(key)
        if value is None or value == ():
            return None
        return value

    def scalar(self, key: str) -> str | None:
        """A single-valued key for policy variables; multivalued keys resolve to None."""
        value = self.values.get(key)
        return value if isinstance(value, str) else None
