"""Decode AWS Query protocol parameters (IAM, STS...) into the nested value of an input shape.

The Query protocol flattens a request into form fields: `UserName=alice`, lists as
`Tags.member.1.Key=k` (1-based), maps as `Attributes.entry.1.key=k`/`.value=v`, nested
structures as `Outer.Inner=v`, an empty list as `Names=`. Decoding is directed by the shape (the
same compact table shapes.py validates against), so the result can be validated exactly like a
JSON request. Field names the shape does not know are ignored, as AWS does.

Hostile input: list indices are ASCII digits only (`str.isdigit` accepts `²`) and at most
MAX_INDEX_DIGITS long; scalars are converted strictly (integers in range, `true`/`false`).
Any of these is a ShapeError with the service's serialization code (a 400), never a 500.
"""

from __future__ import annotations

import re
from typing import Any

from cargobay.aws.shapes import ServiceModel, ShapeError

MAX_INDEX_DIGITS = 5
_INDEX = re.compile(f"[1-9][0-9]{{0,{MAX_INDEX_DIGITS - 1}}}", re.ASCII)
_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)
_MAX_DEPTH = 20


def decode(model: ServiceModel, operation: str, fields: dict[str, str]) -> dict[str, Any]:
    """The operation's input as nested dicts/lists/scalars, from flat Query fields."""
    root = model.input_shape(operation)
    if root is None:
        return {}
    return _Decoder(model, fields).structure(root, "", 0)


class _Decoder:
    def __init__(self, model: ServiceModel, fields: dict[str, str]) -> None:
        self.model = model
        self.fields = fields
        self.code = model.faults.serialization

    def fail(self, message: str) -> ShapeError:
        return ShapeError(self.code, message)

    def value(self, name: str, key: str, depth: int) -> Any:
        """The value of shape `name` serialized at `key` (None when absent)."""
        if depth > _MAX_DEPTH:
            raise self.fail("the request is nested too deeply")
        shape = self.model.shapes[name]
        kind = shape["type"]
        if kind == "structure":
            prefix = key + "."
            if not any(field.startswith(prefix) for field in self.fields):
                return None
            return self.structure(name, prefix, depth)
        if kind == "list":
            return self.list(shape, key, depth)
        if kind == "map":
            return self.map(shape, key, depth)
        raw = self.fields.get(key)
        return None if raw is None else self.scalar(kind, raw, key)

    def structure(self, name: str, prefix: str, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for member, ref in self.model.shapes[name].get("members", {}).items():
            target = ref if isinstance(ref, str) else ref["shape"]
            wire = member if isinstance(ref, str) else ref.get("locationName", member)
            value = self.value(target, prefix + wire, depth + 1)
            if value is not None:
                out[member] = value
        return out

    def indexed(self, prefix: str) -> list[int]:
        """The item numbers N of the fields `<prefix>N[.rest]`, sorted."""
        found: set[int] = set()
        for field in self.fields:
            if field.startswith(prefix):
                index = field[len(prefix) :].partition(".")[0]
                if not _INDEX.fullmatch(index):
                    raise self.fail(f"Invalid list or map index in parameter '{field[:200]}'")
                found.add(int(index))
        return sorted(found)

    def list(self, shape: dict[str, Any], key: str, depth: int) -> list[Any] | None:
        ref = shape["member"]
        item = ref if isinstance(ref, str) else ref["shape"]
        flat = shape.get("flattened")
        prefix = f"{key}." if flat else f"{key}.member."
        indices = self.indexed(prefix)
        if not indices:
            return [] if self.fields.get(key) == "" else None
        return [self.value(item, f"{prefix}{i}", depth + 1) for i in indices]

    def map(self, shape: dict[str, Any], key: str, depth: int) -> dict[Any, Any] | None:
        key_shape, value_shape = _name(shape["key"]), _name(shape["value"])
        prefix = f"{key}." if shape.get("flattened") else f"{key}.entry."
        indices = self.indexed(prefix)
        if not indices:
            return None
        out: dict[Any, Any] = {}
        for i in indices:
            name = self.value(key_shape, f"{prefix}{i}.key", depth + 1)
            if name is None:
                raise self.fail(f"Map entry '{prefix}{i}' has no key")
            out[name] = self.value(value_shape, f"{prefix}{i}.value", depth + 1)
        return out

    def scalar(self, kind: str, raw: str, key: str) -> Any:
        if kind in ("integer", "long"):
            if not _INTEGER.fullmatch(raw):
                raise self.fail(f"Value '{raw[:64]}' at '{key}' is not an integer")
            return int(raw)
        if kind in ("float", "double"):
            try:
                return float(raw) if len(raw) <= 64 else float("nan")
            except ValueError:
                raise self.fail(f"Value '{raw[:64]}' at '{key}' is not a number") from None
        if kind == "boolean":
            if raw not in ("true", "false"):
                raise self.fail(f"Value '{raw[:64]}' at '{key}' is not a boolean")
            return raw == "true"
        return raw


def _name(ref: str | dict[str, Any]) -> str:
    return ref if isinstance(ref, str) else ref["shape"]
