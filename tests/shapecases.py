"""Test inputs generated from an input-shape table: a minimal valid input per operation and, for
every constraint reachable from it, an input that breaks exactly that constraint together with
the error the validator must give. Nothing here is hand-listed: it all comes from the model."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from cargobay.aws.regex import CharSet, compile_pattern, parse
from cargobay.aws.shapes import ServiceModel

# Characters tried, in order, to stand for a character class; and to break a pattern.
_STANDINS = "a0A-_./:@= +,*!é\t"
BREAKERS = ["!", " ", "\n", "A", "a", "0", "-", "/", ".", "_", "é", "\x00", "~", ":", "日"]
_CATEGORY_STANDINS = {"L": "a", "N": "0", "Z": " ", "P": "!", "S": "+", "M": "\u0301"}


@dataclass
class Case:
    operation: str
    what: str  # the constraint broken, e.g. "pattern"
    params: dict[str, Any]
    code_kind: str  # "constraint" or "serialization"
    expect: str  # a fragment the error message must contain


def _standin(charset: CharSet) -> str | None:
    for ch in [*_STANDINS, *sorted(charset.chars)]:
        if ch in charset:
            return ch
    for category in charset.categories:
        ch = _CATEGORY_STANDINS.get(category[0])
        if ch and ch in charset:
            return ch
    for low, high in charset.ranges:
        for code in (low, high, (low + high) // 2):
            if chr(code) in charset:
                return chr(code)
    return None


def _build(node: tuple, stretch: int, choice: int) -> str:
    kind = node[0]
    if kind == "char":
        return _standin(node[1]) or "?"
    if kind == "cat":
        return "".join(_build(item, stretch, choice) for item in node[1])
    if kind == "alt":
        options = node[1]
        return _build(options[min(choice, len(options) - 1)], stretch, choice)
    if kind == "rep":
        _, body, low, high = node
        count = max(low, min(stretch, high if high is not None else stretch))
        return "".join(_build(body, stretch, choice) for _ in range(count))
    return ""  # anchors and lookarounds consume nothing


def sample_string(shape: dict[str, Any]) -> str:
    """A string that satisfies the shape's enum, length and pattern."""
    low, high = shape.get("min", 0), shape.get("max", 10**9)
    if shape.get("enum"):
        return shape["enum"][0]
    pattern = shape.get("pattern")
    if not pattern:
        return "a" * max(low, 1) if high >= 1 else ""
    tree = parse(pattern)
    matcher = compile_pattern(pattern)
    for stretch in range(65):
        for choice in range(4):
            text = _build(tree, stretch, choice)
            if low <= len(text) <= high and matcher.fullmatch(text):
                return text
    raise AssertionError(f"no sample for pattern {pattern!r} within [{low}, {high}]")


def breaking_string(shape: dict[str, Any], valid: str) -> str | None:
    """A string of valid length that the pattern refuses (None if none found)."""
    pattern = shape["pattern"]
    matcher = compile_pattern(pattern)
    low, high = shape.get("min", 0), shape.get("max", 10**9)
    candidates = [valid + "\n"]  # the `match` vs `fullmatch` trap
    for ch in BREAKERS:
        candidates += [ch + valid[1:], valid[:-1] + ch, valid + ch, ch * max(low, 1)]
    for text in candidates:
        if low <= len(text) <= high and not matcher.fullmatch(text):
            return text
    return None


class Generator:
    """Minimal valid values and violating cases for one service's table."""

    def __init__(self, model: ServiceModel) -> None:
        self.model = model
        self.unbreakable: set[str] = set()  # patterns nothing in BREAKERS violates

    def minimal(self, name: str, active: tuple[str, ...] = ()) -> Any:
        shape = self.model.shapes[name]
        kind = shape["type"]
        if kind == "structure":
            members = shape.get("members", {})
            return {
                member: self.minimal(_ref(members[member]), (*active, name))
                for member in shape.get("required", ())
            }
        if kind == "list":
            count = shape.get("min", 0)
            return [self.minimal(_ref(shape["member"]), (*active, name)) for _ in range(count)]
        if kind == "map":
            count = shape.get("min", 0)
            keys = [self.minimal(_ref(shape["key"])) + str(i) * (i > 0) for i in range(count)]
            return {k: self.minimal(_ref(shape["value"]), (*active, name)) for k in keys}
        if kind == "string":
            return sample_string(shape)
        if kind in ("integer", "long", "float", "double"):
            return max(shape.get("min", 0), 0) if shape.get("max", 1) >= 0 else shape["max"]
        if kind == "boolean":
            return True
        if kind == "blob":
            return base64.b64encode(b"x" * max(shape.get("min", 0), 1)).decode()
        if kind == "timestamp":
            return 1_700_000_000
        raise AssertionError(kind)

    def sites(self, root: str) -> Iterator[tuple[list[tuple[str, str]], str]]:
        """(steps, shape) for every value position reachable from `root`; a step is
        ("member", name), ("item", "") or ("value", key). Recursive shapes are cut."""
        todo: list[tuple[list[tuple[str, str]], str, tuple[str, ...]]] = [([], root, ())]
        while todo:
            steps, name, active = todo.pop()
            yield steps, name
            if name in active:
                continue
            shape = self.model.shapes[name]
            here = (*active, name)
            for member, ref in reversed(shape.get("members", {}).items()):
                todo.append(([*steps, ("member", member)], _ref(ref), here))
            if shape["type"] == "list":
                todo.append(([*steps, ("item", "")], _ref(shape["member"]), here))
            if shape["type"] == "map":
                key = self.minimal(_ref(shape["key"]))
                todo.append(([*steps, ("value", key)], _ref(shape["value"]), here))

    def place(self, name: str, steps: list[tuple[str, str]], leaf: Any) -> Any:
        """The minimal valid value of `name` with `leaf` at `steps`."""
        if not steps:
            return leaf
        shape = self.model.shapes[name]
        (kind, key), rest = steps[0], steps[1:]
        if kind == "member":
            value = self.minimal(name)
            value[key] = self.place(_ref(shape["members"][key]), rest, leaf)
            return value
        if kind == "item":
            item = _ref(shape["member"])
            extra = [self.minimal(item) for _ in range(max(shape.get("min", 0) - 1, 0))]
            return [self.place(item, rest, leaf), *extra]
        return {key: self.place(_ref(shape["value"]), rest, leaf)}

    def cases(self, operation: str) -> Iterator[Case]:
        root = self.model.input_shape(operation)
        if root is None:
            return
        for steps, name in self.sites(root):
            path = _path(steps)
            for what, leaf, kind, expect in self.violations(name, path):
                if not steps and kind == "serialization":
                    continue  # the door checks the body is an object
                yield Case(operation, what, self.place(root, steps, leaf), kind, expect)
            parent = self.model.shapes[name]
            for member in parent.get("required", ()):
                where = f"{path}.{_camel(member)}" if path else _camel(member)
                value = self.place(root, steps, self.minimal(name))
                target = value
                for kind_, key in steps:
                    target = target[key] if kind_ != "item" else target[0]
                del target[member]
                expect = (
                    f"Value null at '{where}' failed to satisfy constraint: Member must not be null"
                )
                yield Case(operation, "required", value, "constraint", expect)

    def violations(self, name: str, path: str) -> Iterator[tuple[str, Any, str, str]]:
        """(constraint, violating value, error kind, expected message fragment)."""
        shape = self.model.shapes[name]
        kind = shape["type"]
        at = f"at '{path or 'input'}'"
        low, high = shape.get("min"), shape.get("max")
        wrong = {"string": 12345, "boolean": "yes", "timestamp": "soon", "blob": "!!!!"}
        yield "type", wrong.get(kind, "x"), "serialization", f"{at}: expected"

        def broken(what: str, value: Any, constraint: str) -> tuple[str, Any, str, str]:
            return what, value, "constraint", f"{at} {_FAILED}{constraint}"

        length = "value" if kind in ("integer", "long", "float", "double") else "length"
        too_small = f"Member must have {length} greater than or equal to {low}"
        too_big = f"Member must have {length} less than or equal to {high}"
        if kind == "string":
            valid = sample_string(shape)
            if shape.get("enum"):
                enum = ", ".join(shape["enum"])
                bad = "NOT_AN_ENUM_VALUE"[: high or None]
                yield broken("enum", bad, f"Member must satisfy enum value set: [{enum}]")
            if low:
                yield broken("min", (valid or "a" * low)[: low - 1], too_small)
            if high is not None:
                longer = (valid or "a") * (high // max(len(valid), 1) + 2)
                yield broken("max", longer[: high + 1], too_big)
            if shape.get("pattern") and not shape.get("enum"):
                bad = breaking_string(shape, valid)
                if bad is None:
                    self.unbreakable.add(shape["pattern"])
                else:
                    pattern = f"Member must satisfy regular expression pattern: {shape['pattern']}"
                    yield broken("pattern", bad, pattern)
        elif kind in ("integer", "long", "float", "double"):
            if low is not None:
                yield broken("min", low - 1, too_small)
            if high is not None:
                yield broken("max", high + 1, too_big)
        elif kind in ("list", "map"):
            if low:
                short = self.minimal(name)
                short = short[: low - 1] if kind == "list" else dict(list(short.items())[: low - 1])
                yield broken("min", short, too_small)
            if high is not None and kind == "list":
                yield broken("max", [self.minimal(_ref(shape["member"]))] * (high + 1), too_big)
        elif kind == "blob":
            if low:
                yield broken("min", base64.b64encode(b"x" * (low - 1)).decode(), too_small)
            if high is not None:
                yield broken("max", base64.b64encode(b"x" * (high + 1)).decode(), too_big)


_FAILED = "failed to satisfy constraint: "


def _ref(ref: str | dict[str, Any]) -> str:
    return ref if isinstance(ref, str) else ref["shape"]


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _path(steps: list[tuple[str, str]]) -> str:
    parts: list[str] = []
    for kind, key in steps:
        if kind == "member":
            parts.append(_camel(key))
        elif kind == "item":
            parts += ["1", "member"]
        else:
            parts.append(str(key))
    return ".".join(parts)


def query_fields(model: ServiceModel, name: str, value: Any, key: str = "") -> dict[str, str]:
    """The Query protocol form fields for `value` of shape `name` (the inverse of
    cargobay.aws.query.decode), to drive the IAM door's decoder with generated inputs."""
    shape = model.shapes[name]
    kind = shape["type"]
    out: dict[str, str] = {}
    if kind == "structure":
        for member, item in value.items():
            ref = shape["members"][member]
            wire = member if isinstance(ref, str) else ref.get("locationName", member)
            out |= query_fields(model, _ref(ref), item, f"{key}.{wire}" if key else wire)
    elif kind == "list":
        if not value:
            out[key] = ""
        for i, item in enumerate(value, 1):
            out |= query_fields(model, _ref(shape["member"]), item, f"{key}.member.{i}")
    elif kind == "map":
        for i, (k, v) in enumerate(value.items(), 1):
            out[f"{key}.entry.{i}.key"] = k
            out |= query_fields(model, _ref(shape["value"]), v, f"{key}.entry.{i}.value")
    elif kind == "boolean":
        out[key] = "true" if value else "false"
    else:
        out[key] = str(value)
    return out


SAFE_TYPE_ERRORS = re.compile(r"^(Unexpected|Invalid)")
