"""A quick yes for a request that fits its input shape (`aws.shapes`), without the walk.

Nearly every call is valid, and `shapes._Walk` spends most of its time keeping the paths and
messages it would report. Here each shape becomes one closure, made once per (shape, depth),
that answers only whether a value passes every check the walk makes: True means the walk
would find nothing, so it is skipped; False (anything wrong, or a kind this module leaves to
the walk: blobs and timestamps) runs the walk, which says what and where, as before.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cargobay.aws.shapes import ServiceModel

Accept = Callable[[Any], bool]

_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def _never(_value: Any) -> bool:
    return False


def _ref(ref: str | dict[str, Any]) -> str:
    return ref if isinstance(ref, str) else ref["shape"]


def _bounds(shape: dict[str, Any]) -> tuple[float, float]:
    low, high = shape.get("min"), shape.get("max")
    return (-math.inf if low is None else low), (math.inf if high is None else high)


class Acceptors:
    """The closures of one service model, built on first use."""

    def __init__(self, model: ServiceModel, max_depth: int) -> None:
        self.model = model
        self.max_depth = max_depth
        self._built: dict[tuple[str, int], Accept] = {}

    def root(self, name: str) -> Accept:
        return self.get(name, 0)

    def get(self, name: str, depth: int) -> Accept:
        key = (name, depth)
        found = self._built.get(key)
        if found is None:
            # A recursive shape reaches itself again one level deeper: the stand-in answers
            # until the real closure is in place.
            self._built[key] = lambda value: self._built[key](value)
            found = self._built[key] = self._build(name, depth)
        return found

    def _build(self, name: str, depth: int) -> Accept:
        if depth > self.max_depth:
            return _never  # the walk raises for it
        shape = self.model.shapes[name]
        kind = shape["type"]
        if kind == "structure":
            return self._structure(shape, depth)
        if kind == "list":
            return self._list(shape, depth)
        if kind == "map":
            return self._map(shape, depth)
        if kind == "string":
            return self._string(shape)
        if kind in _INT_RANGE:
            return self._integer(shape, *_INT_RANGE[kind])
        if kind in ("float", "double"):
            return self._number(shape)
        if kind == "boolean":
            return lambda value: isinstance(value, bool)
        return _never  # blob, timestamp, anything else: the walk checks it

    def _structure(self, shape: dict[str, Any], depth: int) -> Accept:
        members = [
            (member, self.get(child, depth + 1), required)
            for member, child, required in self.model.members(shape)
        ]

        def accept(value: Any) -> bool:
            if not isinstance(value, dict):
                return False
            for member, check, required in members:
                item = value.get(member)
                if item is None:
                    if required:
                        return False
                elif not check(item):
                    return False
            return True

        return accept

    def _list(self, shape: dict[str, Any], depth: int) -> Accept:
        low, high = _bounds(shape)
        item = self.get(_ref(shape["member"]), depth + 1)

        def accept(value: Any) -> bool:
            return isinstance(value, list) and low <= len(value) <= high and all(map(item, value))

        return accept

    def _map(self, shape: dict[str, Any], depth: int) -> Accept:
        low, high = _bounds(shape)
        key = self.get(_ref(shape["key"]), depth + 1)
        item = self.get(_ref(shape["value"]), depth + 1)

        def accept(value: Any) -> bool:
            if not isinstance(value, dict) or not low <= len(value) <= high:
                return False
            return all(key(k) and item(v) for k, v in value.items())

        return accept

    def _string(self, shape: dict[str, Any]) -> Accept:
        enum, low, high, pattern, compiled = self.model.string_rules(shape)
        allowed = frozenset(enum) if enum else None
        shortest = -math.inf if low is None else low
        longest = math.inf if high is None else high
        match = compiled.fullmatch if pattern and compiled is not None else None

        def accept(value: Any) -> bool:
            if not isinstance(value, str):
                return False
            if not value.isascii() and _SURROGATE.search(value):
                return False
            if allowed is not None and value not in allowed:
                return False
            if not shortest <= len(value) <= longest:
                return False
            return match is None or bool(match(value))

        return accept

    def _integer(self, shape: dict[str, Any], smallest: int, largest: int) -> Accept:
        low, high = _bounds(shape)

        def accept(value: Any) -> bool:
            return (
                isinstance(value, int)
                and not isinstance(value, bool)
                and smallest <= value <= largest
                and low <= value <= high
            )

        return accept

    def _number(self, shape: dict[str, Any]) -> Accept:
        low, high = _bounds(shape)

        def accept(value: Any) -> bool:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False
            if isinstance(value, float) and not math.isfinite(value):
                return False
            return low <= value <= high

        return accept
