"""Check a decoded AWS request against its operation's input shape (botocore's model).

Public API (every AWS-style door uses it the same way):

    model = shapes.load("ecr")                  # the compact table, cached per process
    model.validate("DescribeImages", payload)   # raises ShapeError(code, message)
    shapes.validate("ecr", "DescribeImages", payload)   # the same in one call

Error codes, per service (`FAULTS`; a door may pass its own):
- A value of the wrong JSON type (a string where a structure belongs, a number for a string,
  invalid base64, a lone surrogate) fails where AWS's JSON deserializer fails, before any
  constraint is looked at: `SerializationException`, one error. No ECR page documents it (it
  is not an ECR model exception): it is the AWS JSON 1.1 protocol's own fault for a body that
  does not deserialize into the input type, which SDKs parse like any `__type`.
- A well-typed value that breaks a constraint (required, enum, length, range, pattern, list
  size) is `InvalidParameterException` for ECR: its model and API reference declare it on
  every operation ("The specified parameter is invalid"), and real ECR answers it for its
  pattern and length checks (`Invalid parameter at 'repositoryName' failed to satisfy
  constraint ...`, widely reported). ECR's model also has `ValidationException`, but only on
  newer operations and for request-level checks, so it is not used here. IAM (Query
  protocol) answers `ValidationError` for both kinds, as its existing checks did. The services
  of the generic AWS JSON door (KMS, Secrets Manager, CloudTrail; Signer too) answer as AWS
  JSON services' request validation does: `ValidationException` for a broken constraint
  (`1 validation error detected: ...`), `SerializationException` for a wrong type. CloudTrail's
  own InvalidMaxResults/InvalidLookupAttributes checks stay for what the model cannot say.
Constraint errors are collected as AWS does: `2 validation errors detected: Value 'x' at
'filter.tagStatus' failed to satisfy constraint: Member must satisfy enum value set: [...];
Value ...` (at most MAX_LISTED listed). Paths use lowerCamel member names, list items are
`<list>.<n>.member` (1-based), map values `<map>.<key>`. Sensitive values are not echoed.
Unknown members are ignored, as AWS does. The walk is iterative and bounded by the shape, so a
deeply nested body costs nothing. A request that fits is answered by `aws.accepts` without it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from cargobay.aws.accepts import Acceptors
from cargobay.aws.regex import Pattern, PatternUnsupported, compile_pattern

MODELS = Path(__file__).with_name("models")  # package data (pyproject.toml)
MAX_LISTED = 10
MAX_DEPTH = 40
MAX_SHOWN = 256
_INT_RANGE = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_SURROGATE = re.compile("[\ud800-\udfff]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
BASE64_SCAN_LIMIT = 1024 * 1024


class ShapeError(Exception):
    """A request that does not fit its input shape: `code` and `message` as AWS names them."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Faults:
    """The error codes a service answers: constraint violations, wrong JSON types."""

    constraint: str
    serialization: str


FAULTS = {
    "ecr": Faults("InvalidParameterException", "SerializationException"),
    "iam": Faults("ValidationError", "ValidationError"),
    "kms": Faults("ValidationException", "SerializationException"),
    "secretsmanager": Faults("ValidationException", "SerializationException"),
    "cloudtrail": Faults("ValidationException", "SerializationException"),
}
DEFAULT_FAULTS = Faults("ValidationException", "SerializationException")


@lru_cache(maxsize=4096)
def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _join(path: str, member: str) -> str:
    return f"{path}.{_camel(member)}" if path else _camel(member)


def _show(value: Any) -> str:
    """A value as Java's toString would print it, cut to MAX_SHOWN characters."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value[:20]) + "]"
    elif isinstance(value, dict):
        pairs = list(value.items())[:20]
        text = "{" + ", ".join(f"{k}={_show(v)}" for k, v in pairs) + "}"
    else:
        text = str(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


def type_name(value: Any) -> str:
    """The JSON type of a decoded value, for serialization messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


class _Walk:
    """One validation: the errors found so far."""

    def __init__(self, model: ServiceModel, faults: Faults) -> None:
        self.model = model
        self.faults = faults
        self.errors: list[str] = []
        self.count = 0

    def violation(self, path: str, value: Any, constraint: str, sensitive: bool = False) -> None:
        self.count += 1
        if len(self.errors) < MAX_LISTED:
            if value is None:
                shown = "Value null"
            elif sensitive:
                shown = "Value"
            else:
                shown = f"Value '{_show(value)}'"
            self.errors.append(
                f"{shown} at '{path}' failed to satisfy constraint: Member must {constraint}"
            )

    def wrong_type(self, path: str, value: Any, expected: str) -> ShapeError:
        return ShapeError(
            self.faults.serialization,
            f"Unexpected {type_name(value)} at '{path}': expected {expected}",
        )

    def run(self, root: str, value: Any) -> None:
        # (shape name, value, path, depth); popped in the order members are declared.
        stack: list[tuple[str, Any, str, int]] = [(root, value, "", 0)]
        while stack:
            name, value, path, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise ShapeError(self.faults.serialization, "the request is nested too deeply")
            shape = self.model.shapes[name]
            children = self.check(shape, value, path)
            if children:
                depth += 1
                for n, v, p in reversed(children):
                    stack.append((n, v, p, depth))

    def check(self, shape: dict[str, Any], value: Any, path: str) -> list[tuple[str, Any, str]]:
        """Check one value; the (shape, value, path) of its children still to check."""
        kind = shape["type"]
        here = path or "input"
        if kind == "structure":
            if not isinstance(value, dict):
                raise self.wrong_type(here, value, "an object")
            children = []
            for member, child, required in self.model.members(shape):
                item = value.get(member)
                if item is not None:
                    children.append((child, item, _join(path, member)))
                elif required:
                    self.violation(_join(path, member), None, "not be null")
            return children
        if kind == "list":
            if not isinstance(value, list):
                raise self.wrong_type(here, value, "an array")
            if not self.size(shape, value, here, "length"):
                return []  # too many items: their own checks would only cost time
            item = _ref(shape["member"])
            return [(item, v, f"{here}.{i}.member") for i, v in enumerate(value, 1)]
        if kind == "map":
            if not isinstance(value, dict):
                raise self.wrong_type(here, value, "an object")
            if not self.size(shape, value, here, "length"):
                return []
            key, item = _ref(shape["key"]), _ref(shape["value"])
            children = []
            for k, v in value.items():
                children.append((key, k, f"{here}.{_show(k)}.key"))
                children.append((item, v, f"{here}.{_show(k)}"))
            return children
        self.scalar(kind, shape, value, here)
        return []

    def scalar(self, kind: str, shape: dict[str, Any], value: Any, path: str) -> None:
        sensitive = bool(shape.get("sensitive"))
        if kind == "string":
            if not isinstance(value, str):
                raise self.wrong_type(path, value, "a string")
            if not value.isascii() and _SURROGATE.search(value):
                raise ShapeError(
                    self.faults.serialization, f"Invalid UTF-16 (a lone surrogate) at '{path}'"
                )
            enum, low, high, pattern, compiled = self.model.string_rules(shape)
            if enum and value not in enum:
                enum_text = ", ".join(enum)
                self.violation(path, value, f"satisfy enum value set: [{enum_text}]", sensitive)
            size = len(value)
            fits = True
            if (low is not None and size < low) or (high is not None and size > high):
                fits = self.size(shape, value, path, "length", sensitive)  # says why
            if pattern and fits and compiled is not None and not compiled.fullmatch(value):
                self.violation(
                    path, value, f"satisfy regular expression pattern: {pattern}", sensitive
                )
        elif kind in _INT_RANGE:
            low, high = _INT_RANGE[kind]
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise self.wrong_type(path, value, f"an {kind} number")
            self.size(shape, value, path, "value")
        elif kind in ("float", "double"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or (isinstance(value, float) and not math.isfinite(value)):
                raise self.wrong_type(path, value, "a number")
            self.size(shape, value, path, "value")
        elif kind == "boolean":
            if not isinstance(value, bool):
                raise self.wrong_type(path, value, "a boolean")
        elif kind == "blob":
            self.blob(shape, value, path, sensitive)
        elif kind == "timestamp" and not _is_timestamp(value):
            raise self.wrong_type(path, value, "a timestamp (epoch seconds or ISO 8601)")

    def blob(self, shape: dict[str, Any], value: Any, path: str, sensitive: bool) -> None:
        """A base64 string; its decoded size (counted, not decoded) against min/max. Beyond
        BASE64_SCAN_LIMIT the alphabet is left to the decoder that reads the blob anyway (a
        20 MiB layer part would cost a second full pass on the event loop)."""
        scanned = len(value) <= BASE64_SCAN_LIMIT if isinstance(value, str) else False
        if (
            not isinstance(value, str)
            or len(value) % 4
            or (scanned and not _BASE64.fullmatch(value))
        ):
            raise self.wrong_type(path, "" if sensitive else value, "base64 text")
        tail = value[-2:]
        size = len(value) // 4 * 3 - (len(tail) - len(tail.rstrip("=")))
        low, high = shape.get("min"), shape.get("max")
        if low is not None and size < low:
            self.violation(path, value, f"have length greater than or equal to {low}", True)
        if high is not None and size > high:
            self.violation(path, value, f"have length less than or equal to {high}", True)

    def size(
        self, shape: dict[str, Any], value: Any, path: str, what: str, sensitive: bool = False
    ) -> bool:
        """min/max on a length or a number; False if violated."""
        measure = value if what == "value" else len(value)
        low, high = shape.get("min"), shape.get("max")
        ok = True
        if low is not None and measure < low:
            self.violation(path, value, f"have {what} greater than or equal to {low}", sensitive)
            ok = False
        if high is not None and measure > high:
            self.violation(path, value, f"have {what} less than or equal to {high}", sensitive)
            ok = False
        return ok


def _ref(ref: str | dict[str, Any]) -> str:
    return ref if isinstance(ref, str) else ref["shape"]


def _is_timestamp(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return math.isfinite(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


class ServiceModel:
    """One service's compact table (`cargobay/aws/models/<service>.json`)."""

    def __init__(self, table: dict[str, Any], faults: Faults | None = None) -> None:
        self.service: str = table["service"]
        self.protocol: str = table["protocol"]
        self.operations: dict[str, str | None] = table["operations"]
        self.shapes: dict[str, dict[str, Any]] = table["shapes"]
        self.faults = faults or FAULTS.get(self.service, DEFAULT_FAULTS)
        # By id() of a shape of `shapes`, which lives as long as this model.
        self._members: dict[int, tuple[tuple[str, str, bool], ...]] = {}
        self._strings: dict[int, tuple[Any, Any, Any, Any, Any]] = {}
        self._accepts = Acceptors(self, MAX_DEPTH)  # the quick yes (`aws.accepts`)

    def members(self, shape: dict[str, Any]) -> tuple[tuple[str, str, bool], ...]:
        """A structure's (member, member's shape name, required) in declared order, worked
        out once per shape (every request walks its input structure)."""
        found = self._members.get(id(shape))
        if found is None:
            required = shape.get("required", ())
            found = tuple(
                (member, _ref(ref), member in required)
                for member, ref in shape.get("members", {}).items()
            )
            self._members[id(shape)] = found
        return found

    def string_rules(self, shape: dict[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
        """A string shape's (enum, min, max, pattern, compiled pattern or None), worked out
        once per shape."""
        found = self._strings.get(id(shape))
        if found is None:
            pattern = shape.get("pattern")
            compiled = self.pattern(pattern) if pattern else None
            found = (shape.get("enum"), shape.get("min"), shape.get("max"), pattern, compiled)
            self._strings[id(shape)] = found
        return found

    def input_shape(self, operation: str) -> str | None:
        """The name of the operation's input shape (KeyError for an unknown operation)."""
        return self.operations[operation]

    def pattern(self, pattern: str) -> Pattern | None:
        """The compiled pattern, None if it uses a construct the matcher lacks (skipped; the
        tests assert no shipped table has one)."""
        try:
            return compile_pattern(pattern)
        except PatternUnsupported:
            return None

    def matches(self, pattern: str, value: str) -> bool:
        compiled = self.pattern(pattern)
        return compiled is None or compiled.fullmatch(value)

    def validate(self, operation: str, params: Any, faults: Faults | None = None) -> None:
        """Raise ShapeError unless `params` (the decoded request) fits the operation's input.
        An operation the model does not have is a KeyError: a door bug, not a client error."""
        root = self.operations[operation]
        if root is None or self._accepts.root(root)(params):
            return
        walk = _Walk(self, faults or self.faults)
        walk.run(root, params)
        if walk.count:
            plural = "error" if walk.count == 1 else "errors"
            raise ShapeError(
                walk.faults.constraint,
                f"{walk.count} validation {plural} detected: " + "; ".join(walk.errors),
            )


@cache
def load(service: str) -> ServiceModel:
    """The service's table, read once per process from the package data."""
    text = (MODELS / f"{service}.json").read_text(encoding="utf-8")
    return ServiceModel(json.loads(text))


def validate(service: str, operation: str, params: Any) -> None:
    """`load(service).validate(operation, params)`."""
    load(service).validate(operation, params)
