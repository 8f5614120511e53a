"""Policy documents: parsing and validating the JSON into :class:`Policy` and its statements.

:func:`parse_policy` refuses anything AWS would (unknown elements, duplicate keys, bad ARNs,
unknown operators) with a :class:`PolicyError` naming the element, and compiles every pattern
once. :meth:`Statement._applies` is the per-statement test the evaluator runs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from cargobay.iam.policy.conditions import Condition, _parse_conditions
from cargobay.iam.policy.errors import PolicyError
from cargobay.iam.policy.patterns import _AnyOf, _Pattern
from cargobay.iam.policy.principals import PrincipalSpec, _MatchKind, _parse_principal
from cargobay.iam.policy.request import AuthRequest, _Context

Effect = Literal["Allow", "Deny"]

#: The policy language versions AWS accepts. Policy variables (``${aws:username}``) are only
#: substituted under 2012-10-17; a policy without ``Version`` gets 2008-10-17 semantics, in which
#: ``${...}`` is literal text.
VERSIONS = ("2012-10-17", "2008-10-17")
_VARIABLES_VERSION = "2012-10-17"

_STATEMENT_KEYS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)
_POLICY_KEYS = frozenset({"Version", "Id", "Statement"})

_ACTION_RE = re.compile(r"[A-Za-z0-9*?-]+:[A-Za-z0-9*?_-]+")


@dataclass(frozen=True)
class Statement:
    """One parsed statement. ``resources`` is None when a resource policy omits ``Resource``
    (the statement then covers the resource the policy is attached to)."""

    effect: Effect
    sid: str | None = None
    actions: tuple[str, ...] = ()
    not_action: bool = False
    resources: tuple[str, ...] | None = None
    not_resource: bool = False
    principal: PrincipalSpec | None = None
    not_principal: bool = False
    conditions: tuple[Condition, ...] = ()
    _action_patterns: tuple[_Pattern, ...] = field(default=(), repr=False, compare=False)
    _resource_patterns: tuple[_Pattern, ...] = field(default=(), repr=False, compare=False)
    _action_matcher: _AnyOf | None = field(default=None, repr=False, compare=False)
    _resource_matcher: _AnyOf | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_action_matcher", _AnyOf(self._action_patterns))
        object.__setattr__(self, "_resource_matcher", _AnyOf(self._resource_patterns))

    def _applies(
        self, request: AuthRequest, ctx: _Context, as_resource_policy: bool
    ) -> _MatchKind | None:
        """None when the statement does not apply, else how the principal was matched."""
        kind: _MatchKind | None = "direct"
        if self.principal is None:
            if as_resource_policy:
                return None
        else:
            matched = self.principal.match(request)
            if self.not_principal:
                if matched is not None:
                    return None
            elif matched is None:
                return None
            else:
                kind = matched
        action = request.action
        hit = self._action_matcher is not None and self._action_matcher.matches(action, None)
        if hit == self.not_action:
            return None
        if self.resources is not None:
            matcher = self._resource_matcher
            hit = matcher is not None and matcher.matches(request.resource_arn, ctx)
            if hit == self.not_resource:
                return None
        if not all(c._evaluate(ctx) for c in self.conditions):
            return None
        return kind


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    raw: str
    version: str | None = None
    id: str | None = None
    resource_policy: bool = False


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise PolicyError(f"policy has a duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise PolicyError(f"policy is not valid JSON: {name} is not allowed")


def _string_list(value: Any, where: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items:
        raise PolicyError(f"{where} must not be empty")
    for item in items:
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{where} must be a non-empty string or a list of them")
    return items


def _parse_statement(raw: Any, where: str, *, resource_policy: bool, variables: bool) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a JSON object")
    unknown = sorted(set(raw) - _STATEMENT_KEYS)
    if unknown:
        raise PolicyError(f"{where} has an unknown element {unknown[0]!r}")

    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicyError(f"{where}.Sid must be a string")

    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}.Effect must be Allow or Deny")

    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError(f"{where} must have exactly one of Action or NotAction")
    action_key = "Action" if "Action" in raw else "NotAction"
    actions = _string_list(raw[action_key], f"{where}.{action_key}")
    for action in actions:
        if action != "*" and not _ACTION_RE.fullmatch(action):
            raise PolicyError(f"{where}.{action_key} {action!r} must be '*' or 'service:Action'")
    action_patterns = tuple(
        _Pattern(a, wildcards=True, variables=False, ignore_case=True) for a in actions
    )

    has_resource, has_not_resource = "Resource" in raw, "NotResource" in raw
    if has_resource and has_not_resource:
        raise PolicyError(f"{where} must not have both Resource and NotResource")
    if not resource_policy and not (has_resource or has_not_resource):
        raise PolicyError(f"{where} must have exactly one of Resource or NotResource")
    resources: tuple[str, ...] | None = None
    resource_patterns: tuple[_Pattern, ...] = ()
    if has_resource or has_not_resource:
        resource_key = "Resource" if has_resource else "NotResource"
        rwhere = f"{where}.{resource_key}"
        resources = tuple(_string_list(raw[resource_key], rwhere))
        for resource in resources:
            if resource != "*" and not resource.startswith("arn:"):
                raise PolicyError(f"{rwhere} {resource!r} must be '*' or an ARN")
        resource_patterns = tuple(
            _Pattern(r, wildcards=True, variables=variables, arn=True, where=rwhere)
            for r in resources
        )

    principal: PrincipalSpec | None = None
    has_principal, has_not_principal = "Principal" in raw, "NotPrincipal" in raw
    if resource_policy:
        if has_principal == has_not_principal:
            raise PolicyError(f"{where} must have exactly one of Principal or NotPrincipal")
        principal_key = "Principal" if has_principal else "NotPrincipal"
        principal = _parse_principal(raw[principal_key], f"{where}.{principal_key}")
    elif has_principal or has_not_principal:
        raise PolicyError(f"{where} must not have a Principal in an identity policy")

    conditions: tuple[Condition, ...] = ()
    if "Condition" in raw:
        conditions = _parse_conditions(raw["Condition"], variables, f"{where}.Condition")

    return Statement(
        effect=effect,
        sid=sid,
        actions=tuple(actions),
        not_action=action_key == "NotAction",
        resources=resources,
        not_resource=has_not_resource,
        principal=principal,
        not_principal=has_not_principal,
        conditions=conditions,
        _action_patterns=action_patterns,
        _resource_patterns=resource_patterns,
    )


def parse_policy(text: str, *, resource_policy: bool = False, unique_sids: bool = True) -> Policy:
    """Parse and validate a policy document; raise :class:`PolicyError` naming the problem.

    ``resource_policy=True`` is for repository and registry policies: every statement needs
    ``Principal`` or ``NotPrincipal`` and ``Resource`` is optional. Identity policies must not
    name a principal and need ``Resource`` or ``NotResource``. IAM refuses two statements with
    one ``Sid``; ECR's repository and registry policies accept them (``unique_sids=False``).
    """
    if not isinstance(text, str):
        raise PolicyError("policy must be a JSON string")
    try:
        doc = json.loads(
            text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant
        )
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except RecursionError:
        raise PolicyError("policy is nested too deeply") from None
    if not isinstance(doc, dict):
        raise PolicyError("policy must be a JSON object")
    unknown = sorted(set(doc) - _POLICY_KEYS)
    if unknown:
        raise PolicyError(f"policy has an unknown element {unknown[0]!r}")

    version = doc.get("Version")
    if version is not None and version not in VERSIONS:
        raise PolicyError(f"Version must be one of {', '.join(VERSIONS)}")
    policy_id = doc.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise PolicyError("Id must be a string")

    if "Statement" not in doc:
        raise PolicyError("policy must have a Statement")
    raw_statements = doc["Statement"]
    if isinstance(raw_statements, dict):
        located = [("Statement", raw_statements)]
    elif isinstance(raw_statements, list):
        if not raw_statements:
            raise PolicyError("Statement must not be empty")
        located = [(f"Statement[{i}]", s) for i, s in enumerate(raw_statements)]
    else:
        raise PolicyError("Statement must be an object or a list of objects")

    variables = version == _VARIABLES_VERSION
    statements: list[Statement] = []
    sids: set[str] = set()
    for where, raw in located:
        statement = _parse_statement(
            raw, where, resource_policy=resource_policy, variables=variables
        )
        if statement.sid is not None and unique_sids:
            if statement.sid in sids:
                raise PolicyError(f"{where}.Sid {statement.sid!r} is not unique")
            sids.add(statement.sid)
        statements.append(statement)
    return Policy(
        statements=tuple(statements),
        raw=text,
        version=version,
        id=policy_id,
        resource_policy=resource_policy,
    )
