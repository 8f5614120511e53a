"""The ``Principal``/``NotPrincipal`` element: parsing it and matching a request's principal.

Whether a principal is named directly or only through its account matters to :func:`decide`:
an account-only grant delegates to that account's identity policies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from cargobay.iam.policy.errors import PolicyError
from cargobay.iam.policy.request import (
    _ARN_ROOT_RE,
    _ASSUMED_ROLE_RE,
    AuthRequest,
    _is_service,
)

_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_PRINCIPAL_ARN_RE = re.compile(r"arn:[a-z0-9-]+:(?:iam|sts)::([0-9]{12}):[^*?\s]+")
_ROLE_ARN_RE = re.compile(r"arn:([a-z0-9-]+):iam::([0-9]{12}):role/(?:.*/)?([^/]+)")

_MatchKind = Literal["direct", "account"]


@dataclass(frozen=True)
class PrincipalSpec:
    """The principals a ``Principal``/``NotPrincipal`` element names.

    ``everyone`` for ``"*"``/``{"AWS": "*"}``; ``accounts`` for account ids and
    ``arn:aws:iam::<id>:root``; ``arns`` for user, role and session ARNs; ``services`` for
    ``{"Service": ...}`` names, which match only requests whose principal is that service.
    """

    everyone: bool = False
    accounts: frozenset[str] = frozenset()
    arns: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()

    def match(self, request: AuthRequest) -> _MatchKind | None:
        """How the request's principal is named: ``"direct"`` (``*``, its own ARN, a service
        name, or the account root asking itself), ``"account"`` (via its account, which AWS
        treats as delegating to the account's own identity policies), or None."""
        arn = request.principal_arn
        if self.everyone or arn in self.arns:
            return "direct"
        if arn.lower() in self.services:
            return "direct"
        session = _ASSUMED_ROLE_RE.fullmatch(arn)
        if session:
            for listed in self.arns:
                role = _ROLE_ARN_RE.fullmatch(listed)
                if role and role.groups() == session.groups():
                    return "direct"
        if request.principal_account in self.accounts and not _is_service(arn):
            root = _ARN_ROOT_RE.fullmatch(arn)
            if root and root.group(1) == request.principal_account:
                return "direct"
            return "account"
        return None


def _parse_principal(value: Any, where: str) -> PrincipalSpec:
    if value == "*":
        return PrincipalSpec(everyone=True)
    if not isinstance(value, dict) or not value:
        raise PolicyError(f'{where} must be "*" or an object such as {{"AWS": ...}}')
    everyone = False
    accounts: set[str] = set()
    arns: set[str] = set()
    services: set[str] = set()
    for kind, entries in value.items():
        if kind not in ("AWS", "Service"):
            raise PolicyError(f"{where} has an unsupported principal type {kind!r}")
        items = entries if isinstance(entries, list) else [entries]
        if not items:
            raise PolicyError(f"{where}.{kind} must not be empty")
        for item in items:
            if not isinstance(item, str) or not item:
                raise PolicyError(f"{where}.{kind} entries must be non-empty strings")
            if kind == "Service":
                if "*" in item or "?" in item:
                    raise PolicyError(f"{where}.Service {item!r} must not contain wildcards")
                services.add(item.lower())
                continue
            if item == "*":
                everyone = True
            elif _ACCOUNT_RE.fullmatch(item):
                accounts.add(item)
            elif root := _ARN_ROOT_RE.fullmatch(item):
                accounts.add(root.group(1))
            elif _PRINCIPAL_ARN_RE.fullmatch(item):
                arns.add(item)
            else:
                raise PolicyError(
                    f'{where}.AWS {item!r} is not "*", an account id or an IAM principal ARN'
                )
    return PrincipalSpec(everyone, frozenset(accounts), frozenset(arns), frozenset(services))
