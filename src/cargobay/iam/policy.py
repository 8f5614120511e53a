"""The AWS IAM policy language: parsing and evaluation with AWS semantics.

One engine serves the three kinds of policy cargobay stores:

- identity policies (inline user policies): no ``Principal``; ``Resource``/``NotResource`` required;
- ECR repository policies: resource-based, ``Principal``/``NotPrincipal`` required, no ``Resource``
  needed (the statement applies to the repository the policy is attached to);
- ECR registry policies: resource-based, ``Principal`` required, ``Resource`` names repository ARNs.

:func:`parse_policy` validates a document and compiles its patterns once; :func:`statement_effect`
asks one policy about one request; :func:`decide` combines identity and resource policies the way
AWS does (explicit Deny wins; same account needs one Allow; cross account needs both sides).

The module is pure: no I/O, and nothing from the rest of cargobay except :class:`Principal`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from cargobay.iam.principal import Principal
from cargobay.wildcards import GlobSet, Token, arn_tokens

__all__ = [
    "VERSIONS",
    "AuthRequest",
    "Condition",
    "Policy",
    "PolicyError",
    "PrincipalSpec",
    "Statement",
    "decide",
    "parse_policy",
    "statement_effect",
]

Effect = Literal["Allow", "Deny"]
Decision = Literal["Allow", "Deny", "ImplicitDeny"]
ContextValue = str | list[str] | bool | None

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

_ACCOUNT_RE = re.compile(r"[0-9]{12}")
_ARN_ROOT_RE = re.compile(r"arn:[a-z0-9-]+:iam::([0-9]{12}):root")
_PRINCIPAL_ARN_RE = re.compile(r"arn:[a-z0-9-]+:(?:iam|sts)::([0-9]{12}):[^*?\s]+")
_ACTION_RE = re.compile(r"[A-Za-z0-9*?-]+:[A-Za-z0-9*?_-]+")
_CONDITION_KEY_RE = re.compile(r"[A-Za-z0-9*?_.-]+:\S.*")
_EPOCH_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_USER_ARN_RE = re.compile(r"arn:[a-z0-9-]+:iam::[0-9]{12}:user/(?:.*/)?([^/]+)")
_ASSUMED_ROLE_RE = re.compile(r"arn:([a-z0-9-]+):sts::([0-9]{12}):assumed-role/([^/]+)/.+")
_ROLE_ARN_RE = re.compile(r"arn:([a-z0-9-]+):iam::([0-9]{12}):role/(?:.*/)?([^/]+)")


class PolicyError(ValueError):
    """A policy document is malformed; the message names the element and the problem."""


# --------------------------------------------------------------------------------------------
# Requests and their context
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Patterns: wildcards, ARN segments and policy variables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Var:
    key: str  # lower-cased context key
    default: str | None


# A pattern part: ("lit", text) from the policy, ("star",), ("one",), or a _Var.
_Part = tuple[str, str] | tuple[str] | _Var


def _parse_variable(body: str) -> _Var | None:
    """`key` or `key, 'default'` (`''` is a quote inside the default), spaces allowed around
    each part; None when malformed. Parsed by hand: the regular expression this replaces
    backtracked quadratically on long bodies of spaces."""
    key, comma, rest = body.partition(",")
    key = key.strip()
    if not key or "'" in key:
        return None
    if not comma:
        return _Var(key.lower(), None)
    rest = rest.strip()
    if len(rest) < 2 or rest[0] != "'" or rest[-1] != "'":
        return None
    inner = rest[1:-1]
    if "'" in inner.replace("''", ""):
        return None
    return _Var(key.lower(), inner.replace("''", "'"))


def _tokenize(text: str, *, wildcards: bool, variables: bool, where: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts.append(("lit", "".join(literal)))
            literal.clear()

    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if variables and ch == "$" and text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                literal.append(ch)
                i += 1
                continue
            body = text[i + 2 : end]
            i = end + 1
            if body in ("*", "?", "$"):
                literal.append(body)
                continue
            variable = _parse_variable(body)
            if variable is None:
                raise PolicyError(f"{where} has an invalid policy variable ${{{body}}}")
            flush()
            parts.append(variable)
            continue
        if wildcards and ch == "*":
            flush()
            parts.append(("star",))
        elif wildcards and ch == "?":
            flush()
            parts.append(("one",))
        else:
            literal.append(ch)
        i += 1
    flush()
    return tuple(parts)


class _Pattern:
    """A policy string compiled once into a linear-time wildcard matcher (:mod:`wildcards`).

    ``arn=True`` applies IAM's ARN rule to patterns that start with ``arn:`` (see
    :func:`wildcards.arn_tokens`). Text substituted for a policy variable is always literal.
    """

    __slots__ = ("_arn", "_ignore_case", "_parts", "_static", "text")

    def __init__(
        self,
        text: str,
        *,
        wildcards: bool,
        variables: bool,
        ignore_case: bool = False,
        arn: bool = False,
        where: str = "",
    ) -> None:
        self.text = text
        self._parts = _tokenize(text, wildcards=wildcards, variables=variables, where=where)
        self._arn = arn and text.startswith("arn:")
        self._ignore_case = ignore_case
        self._static = (
            None if any(isinstance(p, _Var) for p in self._parts) else self._tokens(self._parts)
        )

    def _tokens(self, parts: Sequence[_Part]) -> list[Token]:
        pairs: list[tuple[str, str]] = []
        for part in parts:
            if isinstance(part, _Var):  # pragma: no cover - resolved before compiling
                raise AssertionError("unresolved policy variable")
            pairs.append((part[0], part[1] if len(part) > 1 else ""))  # type: ignore[misc]
        if self._arn:
            return arn_tokens(pairs)
        out: list[Token] = []
        for kind, text in pairs:
            if kind in ("lit", "val"):
                out.extend(Token("lit", ch) for ch in text)
            else:
                out.append(Token(kind))
        return out

    @property
    def static(self) -> bool:
        return self._static is not None

    def tokens(self, ctx: _Context | None) -> list[Token] | None:
        """The pattern's tokens, or None when a policy variable has no value and no default."""
        if self._static is not None:
            return self._static
        resolved: list[_Part] = []
        for part in self._parts:
            if isinstance(part, _Var):
                value = ctx.scalar(part.key) if ctx is not None else None
                if value is None:
                    value = part.default
                if value is None:
                    return None
                resolved.append(("val", value))
            else:
                resolved.append(part)
        return self._tokens(resolved)

    def matches(self, value: str, ctx: _Context | None) -> bool:
        return _AnyOf((self,)).matches(value, ctx)

    def __repr__(self) -> str:
        return f"_Pattern({self.text!r})"


class _AnyOf:
    """Whether a value matches any of several patterns: the static ones are compiled into one
    :class:`GlobSet` up front (one linear pass for all of them); patterns with policy variables
    are resolved and compiled per request."""

    __slots__ = ("_dynamic", "_ignore_case", "_static")

    def __init__(self, patterns: Sequence[_Pattern]) -> None:
        self._ignore_case = any(p._ignore_case for p in patterns)
        static = [p.tokens(None) for p in patterns if p.static]
        self._static = (
            GlobSet([t for t in static if t is not None], ignore_case=self._ignore_case)
            if static
            else None
        )
        self._dynamic = tuple(p for p in patterns if not p.static)

    def run(self, value: str, ctx: _Context | None) -> tuple[bool, int]:
        """The answer and the matcher's step count (for tests of the linear bound)."""
        steps = 0
        if self._static is not None:
            hit, steps = self._static.run(value)
            if hit:
                return True, steps
        if self._dynamic:
            resolved = [t for t in (p.tokens(ctx) for p in self._dynamic) if t is not None]
            if resolved:
                hit, more = GlobSet(resolved, ignore_case=self._ignore_case).run(value)
                return hit, steps + more
        return False, steps

    def matches(self, value: str, ctx: _Context | None) -> bool:
        return self.run(value, ctx)[0]


# --------------------------------------------------------------------------------------------
# Principals
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------

# canonical base operator -> (kind, negated)
_OPERATORS: dict[str, tuple[str, bool]] = {
    "StringEquals": ("str_eq", False),
    "StringNotEquals": ("str_eq", True),
    "StringEqualsIgnoreCase": ("str_eq_ic", False),
    "StringNotEqualsIgnoreCase": ("str_eq_ic", True),
    "StringLike": ("str_like", False),
    "StringNotLike": ("str_like", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "NumericEquals": ("num_eq", False),
    "NumericNotEquals": ("num_eq", True),
    "NumericLessThan": ("num_lt", False),
    "NumericLessThanEquals": ("num_le", False),
    "NumericGreaterThan": ("num_gt", False),
    "NumericGreaterThanEquals": ("num_ge", False),
    "DateEquals": ("date_eq", False),
    "DateNotEquals": ("date_eq", True),
    "DateLessThan": ("date_lt", False),
    "DateLessThanEquals": ("date_le", False),
    "DateGreaterThan": ("date_gt", False),
    "DateGreaterThanEquals": ("date_ge", False),
    "Bool": ("bool", False),
    "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
    "Null": ("null", False),
}
_OPERATORS_LOWER = {name.lower(): name for name in _OPERATORS}
_Qualifier = Literal["ForAnyValue", "ForAllValues"]
_QUALIFIERS: dict[str, _Qualifier] = {"foranyvalue": "ForAnyValue", "forallvalues": "ForAllValues"}

_STRING_KINDS = frozenset({"str_eq", "str_eq_ic", "str_like", "arn"})

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def _parse_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _parse_date(text: str) -> datetime | None:
    text = text.strip()
    if _EPOCH_RE.fullmatch(text):
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _policy_scalar(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    return None


@dataclass(frozen=True)
class Condition:
    """One ``operator: {key: values}`` test of a statement's ``Condition`` block."""

    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    key: str  # as written, e.g. "aws:PrincipalTag/team"
    values: tuple[str, ...]
    base: str  # canonical operator without qualifier or IfExists, e.g. "StringLike"
    qualifier: _Qualifier | None = None
    if_exists: bool = False
    _prepared: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    _strings: _AnyOf | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if _OPERATORS[self.base][0] in _STRING_KINDS and self._strings is None:
            object.__setattr__(self, "_strings", _AnyOf(self._prepared))

    @property
    def negated(self) -> bool:
        return _OPERATORS[self.base][1]

    def _match_one(self, actual: str, expected: Any, ctx: _Context) -> bool:
        """Whether one context value satisfies one policy value under the positive operator."""
        kind = _OPERATORS[self.base][0]
        if kind in ("str_eq", "str_eq_ic", "str_like", "arn"):
            return expected.matches(actual, ctx)
        if kind in ("bool", "binary"):
            return (actual.lower() if kind == "bool" else actual) == expected
        if kind == "ip":
            address = _parse_ip(actual)
            return address is not None and address in expected
        if kind.startswith("num_"):
            number = _parse_number(actual)
            return number is not None and _COMPARE[kind[4:]](number, expected)
        if kind.startswith("date_"):
            moment = _parse_date(actual)
            return moment is not None and _COMPARE[kind[5:]](moment, expected)
        raise AssertionError(kind)  # pragma: no cover

    def _hit(self, actual: str, ctx: _Context) -> bool:
        if self._strings is not None:  # all values in one linear pass
            return self._strings.matches(actual, ctx)
        return any(self._match_one(actual, expected, ctx) for expected in self._prepared)

    def _holds_for(self, actual: str, ctx: _Context) -> bool:
        hit = self._hit(actual, ctx)
        return not hit if self.negated else hit

    def _evaluate(self, ctx: _Context) -> bool:
        raw = ctx.get(self.key.lower())
        if self.base == "Null":
            absent = "true" if raw is None else "false"
            return absent in self.values
        if raw is None:
            if self.if_exists or self.qualifier == "ForAllValues":
                return True
            if self.qualifier == "ForAnyValue":
                return False
            return self.negated
        actual = (raw,) if isinstance(raw, str) else raw
        if self.qualifier == "ForAllValues":
            return all(self._holds_for(v, ctx) for v in actual)
        if self.qualifier == "ForAnyValue":
            return any(self._holds_for(v, ctx) for v in actual)
        # No set operator: a multivalued key matches when any of its values does.
        hit = any(self._hit(v, ctx) for v in actual)
        return not hit if self.negated else hit


def _parse_operator(operator: str, where: str) -> tuple[str, _Qualifier | None, bool]:
    qualifier: _Qualifier | None = None
    name = operator
    if ":" in name:
        prefix, name = name.split(":", 1)
        qualifier = _QUALIFIERS.get(prefix.lower())
        if qualifier is None:
            raise PolicyError(f"{where} has an unknown condition set operator {prefix!r}")
    if_exists = False
    base = _OPERATORS_LOWER.get(name.lower())
    if base is None and name.lower().endswith("ifexists"):
        base = _OPERATORS_LOWER.get(name.lower()[: -len("ifexists")])
        if_exists = True
    if base is None:
        raise PolicyError(f"{where} has an unknown condition operator {operator!r}")
    if base == "Null" and (if_exists or qualifier):
        raise PolicyError(f"{where} operator {operator!r}: Null takes no IfExists or set operator")
    return base, qualifier, if_exists


def _prepare_value(base: str, text: str, variables: bool, where: str) -> Any:
    kind = _OPERATORS[base][0]
    if kind == "str_eq":
        return _Pattern(text, wildcards=False, variables=variables, where=where)
    if kind == "str_eq_ic":
        return _Pattern(text, wildcards=False, variables=variables, ignore_case=True, where=where)
    if kind == "str_like":
        return _Pattern(text, wildcards=True, variables=variables, where=where)
    if kind == "arn":
        return _Pattern(text, wildcards=True, variables=variables, arn=True, where=where)
    if kind in ("bool", "null"):
        if text.lower() not in ("true", "false"):
            raise PolicyError(f'{where} value {text!r} must be "true" or "false"')
        return text.lower()
    if kind == "binary":
        return text
    if kind == "ip":
        try:
            return ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise PolicyError(f"{where} value {text!r} is not an IP address or CIDR") from None
    if kind.startswith("num_"):
        number = _parse_number(text)
        if number is None:
            raise PolicyError(f"{where} value {text!r} is not a number")
        return number
    moment = _parse_date(text)
    if moment is None:
        raise PolicyError(f"{where} value {text!r} is not an ISO 8601 date or epoch seconds")
    return moment


def _parse_conditions(block: Any, variables: bool, where: str) -> tuple[Condition, ...]:
    if not isinstance(block, dict):
        raise PolicyError(f"{where} must be an object of operator: {{key: value}}")
    conditions: list[Condition] = []
    for operator, tests in block.items():
        op_where = f"{where}.{operator}"
        base, qualifier, if_exists = _parse_operator(operator, where)
        if not isinstance(tests, dict) or not tests:
            raise PolicyError(f"{op_where} must be a non-empty object of key: value")
        for key, raw in tests.items():
            key_where = f"{op_where}.{key}"
            if not isinstance(key, str) or not _CONDITION_KEY_RE.fullmatch(key):
                raise PolicyError(
                    f"{op_where} key {key!r} must be 'prefix:name', e.g. aws:SourceIp"
                )
            items = raw if isinstance(raw, list) else [raw]
            if not items:
                raise PolicyError(f"{key_where} must not be an empty list")
            values: list[str] = []
            for item in items:
                scalar = _policy_scalar(item)
                if scalar is None:
                    raise PolicyError(f"{key_where} values must be strings, numbers or booleans")
                values.append(scalar)
            prepared = tuple(_prepare_value(base, v, variables, key_where) for v in values)
            conditions.append(
                Condition(
                    operator=operator,
                    key=key,
                    values=tuple(v.lower() if base in ("Null", "Bool") else v for v in values),
                    base=base,
                    qualifier=qualifier,
                    if_exists=if_exists,
                    _prepared=prepared,
                )
            )
    return tuple(conditions)


# --------------------------------------------------------------------------------------------
# Statements and policies
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


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
