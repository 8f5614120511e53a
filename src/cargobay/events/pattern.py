"""EventBridge event patterns: validation and matching.

A pattern is compiled once (when a webhook is stored or loaded) into a tree of small matchers, so
matching an event costs a few dictionary lookups and string comparisons. Semantics follow
EventBridge's documentation:

- every field named in the pattern must match (AND); the values listed for a field are
  alternatives (OR); `$or` lists alternative sub-patterns;
- a leaf value in the event that is an array matches when any of its elements matches;
- exact values (strings, numbers, `true`, `false`, `null`; `""` and `null` differ), `prefix`,
  `suffix` (each optionally `{"equals-ignore-case": ...}`), `equals-ignore-case`, `wildcard`,
  `anything-but` (a value, a list, or `prefix`/`suffix`/`equals-ignore-case`/`wildcard`),
  `numeric` (comparisons and ranges), `exists`, `cidr`;
- a missing field matches only `{"exists": false}`; `anything-but` needs the field present;
- comparison operators apply to leaves only: a field that is an object matches none of them.

Wildcards are matched by splitting the pattern at its stars and finding each literal piece left
to right: no regular expression, no backtracking, so a hostile pattern cannot stall a worker.
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Callable
from typing import Any

__all__ = ["Pattern", "PatternError", "compile_pattern", "matches"]

# EventBridge accepts numbers in this range in numeric patterns.
NUMERIC_LIMIT = 5.0e9
MAX_DEPTH = 16

_ABSENT = object()

ValueMatcher = Callable[[Any], bool]


class PatternError(ValueError):
    """A malformed event pattern; the message says where and why."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fail(path: str, message: str) -> PatternError:
    return PatternError(f"event pattern: {path or 'pattern'}: {message}")


# -- wildcards -------------------------------------------------------------------------------


def _wildcard_segments(text: str, path: str) -> list[str]:
    """The literal pieces between unescaped stars (`\\*` is a star, `\\\\` a backslash)."""
    segments: list[str] = []
    current: list[str] = []
    i = 0
    previous_star = False
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in "*\\":
                raise _fail(path, "wildcard: only \\* and \\\\ may be escaped")
            current.append(text[i + 1])
            i += 2
            previous_star = False
            continue
        if char == "*":
            if previous_star:
                raise _fail(path, "wildcard: consecutive * are not allowed")
            segments.append("".join(current))
            current = []
            previous_star = True
        else:
            current.append(char)
            previous_star = False
        i += 1
    segments.append("".join(current))
    return segments


def _wildcard(text: str, path: str) -> ValueMatcher:
    segments = _wildcard_segments(text, path)
    if len(segments) == 1:
        literal = segments[0]
        return lambda value: isinstance(value, str) and value == literal
    head, middle, tail = segments[0], segments[1:-1], segments[-1]

    def match(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        end = len(value) - len(tail)
        if end < len(head) or not value.startswith(head) or not value.endswith(tail):
            return False
        position = len(head)
        for piece in middle:  # leftmost occurrence of each piece is always the best choice
            found = value.find(piece, position, end)
            if found < 0:
                return False
            position = found + len(piece)
        return True

    return match


# -- leaf operators --------------------------------------------------------------------------


def _string(value: Any, path: str, what: str) -> str:
    if not isinstance(value, str):
        raise _fail(path, f"{what} needs a string, not {json.dumps(value)}")
    return value


def _affix(operand: Any, path: str, name: str) -> ValueMatcher:
    """`prefix` or `suffix`, optionally `{"equals-ignore-case": "..."}`."""
    ignore_case = False
    if isinstance(operand, dict):
        if set(operand) != {"equals-ignore-case"}:
            raise _fail(path, f'{name} takes a string or {{"equals-ignore-case": string}}')
        operand, ignore_case = operand["equals-ignore-case"], True
    text = _string(operand, path, name)
    if ignore_case:
        text = text.casefold()
    starts = name == "prefix"

    def match(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        subject = value.casefold() if ignore_case else value
        return subject.startswith(text) if starts else subject.endswith(text)

    return match


def _ignore_case(operand: Any, path: str) -> ValueMatcher:
    text = _string(operand, path, "equals-ignore-case").casefold()
    return lambda value: isinstance(value, str) and value.casefold() == text


_LOWER = {">": float.__gt__, ">=": float.__ge__}
_UPPER = {"<": float.__lt__, "<=": float.__le__}


def _numeric(operand: Any, path: str) -> ValueMatcher:
    if not isinstance(operand, list) or not operand or len(operand) % 2:
        raise _fail(path, 'numeric takes [operator, number, ...], e.g. [">", 0, "<=", 5]')
    checks: list[tuple[Callable[[float, float], bool], float]] = []
    lower = upper = None
    equal = False
    for op, number in zip(operand[::2], operand[1::2], strict=True):
        if not _is_number(number) or not math.isfinite(number):
            raise _fail(path, f"numeric: {json.dumps(number)} is not a number")
        if abs(number) > NUMERIC_LIMIT:
            raise _fail(path, f"numeric: {number} is outside -5e9..5e9")
        number = float(number)
        if op == "=":
            equal = True
            checks.append((float.__eq__, number))
        elif op in _LOWER:
            if lower is not None:
                raise _fail(path, "numeric: more than one lower bound")
            lower = number
            checks.append((_LOWER[op], number))
        elif op in _UPPER:
            if upper is not None:
                raise _fail(path, "numeric: more than one upper bound")
            upper = number
            checks.append((_UPPER[op], number))
        else:
            raise _fail(path, f"numeric: unknown operator {json.dumps(op)}")
    if equal and len(checks) > 1:
        raise _fail(path, 'numeric: "=" cannot be combined with other comparisons')
    if lower is not None and upper is not None and lower >= upper:
        raise _fail(path, "numeric: the lower bound must be below the upper bound")

    def match(value: Any) -> bool:
        if not _is_number(value):
            return False
        subject = float(value)
        return all(check(subject, bound) for check, bound in checks)

    return match


def _cidr(operand: Any, path: str) -> ValueMatcher:
    try:
        network = ipaddress.ip_network(_string(operand, path, "cidr"), strict=False)
    except ValueError as exc:
        raise _fail(path, f"cidr: {exc}") from None

    def match(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return ipaddress.ip_address(value) in network
        except ValueError:
            return False

    return match


def _equal(expected: Any) -> ValueMatcher:
    if _is_number(expected):
        number = float(expected)
        return lambda value: _is_number(value) and float(value) == number
    if isinstance(expected, str):
        return lambda value: isinstance(value, str) and value == expected
    # true, false, null: identity (True is not 1 in a pattern)
    return lambda value: value is expected


def _anything_but(operand: Any, path: str) -> ValueMatcher:
    inner: ValueMatcher
    if isinstance(operand, dict):
        if len(operand) != 1:
            raise _fail(
                path, "anything-but takes one of prefix, suffix, equals-ignore-case, wildcard"
            )
        ((name, value),) = operand.items()
        if name in ("prefix", "suffix"):
            inner = _affix(_string(value, path, f"anything-but {name}"), path, name)
        elif name in ("equals-ignore-case", "wildcard"):
            values = value if isinstance(value, list) else [value]
            if not values:
                raise _fail(path, f"anything-but {name}: the list is empty")
            build = _ignore_case if name == "equals-ignore-case" else _wildcard
            parts = [build(_string(v, path, f"anything-but {name}"), path) for v in values]
            inner = lambda value: any(part(value) for part in parts)  # noqa: E731
        else:
            raise _fail(path, f"anything-but: unknown operator {json.dumps(name)}")
        # These forms compare strings; any other value is trivially "not" them.
        return lambda value: not inner(value)
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise _fail(path, "anything-but: the list is empty")
    if not (all(isinstance(v, str) for v in values) or all(_is_number(v) for v in values)):
        raise _fail(path, "anything-but takes a string, a number, or a list of only one of those")
    parts = [_equal(v) for v in values]
    return lambda value: not any(part(value) for part in parts)


_OPERATORS: dict[str, Callable[[Any, str], ValueMatcher]] = {
    "prefix": lambda operand, path: _affix(operand, path, "prefix"),
    "suffix": lambda operand, path: _affix(operand, path, "suffix"),
    "equals-ignore-case": _ignore_case,
    "wildcard": lambda operand, path: _wildcard(_string(operand, path, "wildcard"), path),
    "numeric": _numeric,
    "cidr": _cidr,
    "anything-but": _anything_but,
}


# -- the tree --------------------------------------------------------------------------------


class _Field:
    """The alternatives listed for one leaf field."""

    __slots__ = ("absent_ok", "matchers", "present_ok")

    def __init__(self, items: list[Any], path: str) -> None:
        self.matchers: list[ValueMatcher] = []
        self.absent_ok = False  # {"exists": false}
        self.present_ok = False  # {"exists": true}
        for item in items:
            if isinstance(item, dict):
                if len(item) != 1:
                    raise _fail(path, f"each matcher object has one operator, not {len(item)}")
                ((name, operand),) = item.items()
                if name == "exists":
                    if not isinstance(operand, bool):
                        raise _fail(path, "exists takes true or false")
                    if operand:
                        self.present_ok = True
                    else:
                        self.absent_ok = True
                elif name in _OPERATORS:
                    self.matchers.append(_OPERATORS[name](operand, path))
                else:
                    raise _fail(path, f"unknown operator {json.dumps(name)}")
            elif isinstance(item, list):
                raise _fail(path, "arrays cannot be nested in a pattern")
            elif isinstance(item, float) and not math.isfinite(item):
                raise _fail(path, "numbers must be finite")
            else:
                self.matchers.append(_equal(item))

    def matches(self, value: Any) -> bool:
        leaves = _leaves(value)
        if leaves is None:  # an object: comparisons apply to leaves only
            return False
        if not leaves:
            return self.absent_ok
        if self.present_ok:
            return True
        return any(m(leaf) for leaf in leaves for m in self.matchers)


def _leaves(value: Any) -> list[Any] | None:
    """The leaf values of a field: [] when absent, None when it is an object."""
    if value is _ABSENT:
        return []
    if isinstance(value, dict):
        return None
    if isinstance(value, list):
        flat: list[Any] = []
        for element in value:
            inner = _leaves(element)
            if inner:
                flat.extend(inner)
        return flat
    return [value]


class _Object:
    """A (sub)pattern: fields that must all match, and `$or` groups of alternatives."""

    __slots__ = ("alternatives", "fields")

    def __init__(self, pattern: Any, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _fail(path, f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(pattern, dict):
            raise _fail(path, "must be a JSON object")
        if not pattern:
            raise _fail(path, "must name at least one field")
        self.fields: list[tuple[str, _Object | _Field]] = []
        self.alternatives: list[list[_Object]] = []
        for key, value in pattern.items():
            where = f"{path}.{key}" if path else key
            if key == "$or":
                if not isinstance(value, list) or len(value) < 2:
                    raise _fail(where, "$or takes a list of at least two patterns")
                self.alternatives.append(
                    [_Object(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
                )
            elif isinstance(value, dict):
                self.fields.append((key, _Object(value, where, depth + 1)))
            elif isinstance(value, list):
                if not value:
                    raise _fail(where, "the list of values is empty")
                self.fields.append((key, _Field(value, where)))
            else:
                raise _fail(where, f"values must be in an array, e.g. [{json.dumps(value)}]")

    def matches(self, event: Any) -> bool:
        for key, node in self.fields:
            value = event.get(key, _ABSENT) if isinstance(event, dict) else _ABSENT
            if isinstance(node, _Object):
                if isinstance(value, list):
                    objects = [v for v in value if isinstance(v, dict)]
                    if not any(node.matches(v) for v in objects or [_ABSENT]):
                        return False
                elif not node.matches(value if isinstance(value, dict) else _ABSENT):
                    return False
            elif not node.matches(value):
                return False
        return all(any(alt.matches(event) for alt in group) for group in self.alternatives)


class Pattern:
    """A validated, compiled event pattern."""

    __slots__ = ("_root", "source")

    def __init__(self, source: dict[str, Any]) -> None:
        self.source = source
        self._root = _Object(source, "", 0)

    def matches(self, event: dict[str, Any]) -> bool:
        return self._root.matches(event)

    def text(self) -> str:
        return json.dumps(self.source, separators=(",", ":"), sort_keys=True)


def compile_pattern(pattern: str | dict[str, Any]) -> Pattern:
    """Parse (when given JSON text) and validate a pattern; PatternError when malformed."""
    if isinstance(pattern, str):
        try:
            pattern = json.loads(pattern)
        except json.JSONDecodeError as exc:
            raise PatternError(f"event pattern is not valid JSON: {exc}") from None
    return Pattern(pattern)  # type: ignore[arg-type]


def matches(pattern: str | dict[str, Any] | Pattern | None, event: dict[str, Any]) -> bool:
    """Whether the event matches; no pattern matches every event."""
    if pattern is None:
        return True
    if not isinstance(pattern, Pattern):
        pattern = compile_pattern(pattern)
    return pattern.matches(event)
