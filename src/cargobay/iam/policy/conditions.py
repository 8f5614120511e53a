"""The ``Condition`` block: operators, set qualifiers, ``IfExists`` and ``Null``.

Values are parsed and checked once, when the policy is parsed (numbers, dates, CIDRs,
patterns), so a malformed condition is a :class:`PolicyError`, never a failure at request time.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from cargobay.iam.policy.errors import PolicyError
from cargobay.iam.policy.patterns import _AnyOf, _Pattern
from cargobay.iam.policy.request import _Context

_CONDITION_KEY_RE = re.compile(r"[A-Za-z0-9*?_.-]+:\S.*")
_EPOCH_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")

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
