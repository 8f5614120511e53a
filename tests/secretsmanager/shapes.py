"""Checks a result dict against botocore's `secretsmanager` output shape: every key is a member
and every value has the member's type (timestamps as epoch numbers, blobs as bytes)."""

from __future__ import annotations

from typing import Any

import botocore.session

MODEL = botocore.session.get_session().get_service_model("secretsmanager")


def assert_output_shape(operation: str, result: dict[str, Any]) -> None:
    shape = MODEL.operation_model(operation).output_shape
    if shape is None:
        assert result == {}, result
        return
    _check(shape, result, operation)


def _check(shape: Any, value: Any, path: str) -> None:
    kind = shape.type_name
    if kind == "structure":
        assert isinstance(value, dict), path
        for key, member in value.items():
            assert key in shape.members, f"{path}.{key} is not in {shape.name}"
            _check(shape.members[key], member, f"{path}.{key}")
    elif kind == "list":
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            _check(shape.member, item, f"{path}[{i}]")
    elif kind == "map":
        assert isinstance(value, dict), path
        for key, item in value.items():
            _check(shape.key, key, f"{path} key")
            _check(shape.value, item, f"{path}[{key}]")
    elif kind == "string":
        assert isinstance(value, str), path
        if "max" in shape.metadata:
            assert len(value) <= shape.metadata["max"], path
    elif kind == "timestamp":
        assert isinstance(value, int | float) and not isinstance(value, bool), path
    elif kind == "boolean":
        assert isinstance(value, bool), path
    elif kind == "blob":
        assert isinstance(value, bytes), path
    elif kind in ("integer", "long"):
        assert isinstance(value, int), path
    else:
        raise AssertionError(f"{path}: unhandled shape type {kind}")


def error_names(operation: str) -> set[str]:
    return {shape.name for shape in MODEL.operation_model(operation).error_shapes}
