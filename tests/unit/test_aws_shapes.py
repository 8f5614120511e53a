"""The model-driven validator: every operation of every shipped table, every constraint in its
input shape, broken one at a time (cases generated from the model by tests/shapecases.py)."""

from __future__ import annotations

import pytest

from cargobay.aws import query, shapes
from cargobay.aws.generate import SERVICES
from cargobay.aws.regex import compile_pattern
from shapecases import BREAKERS, Case, Generator, query_fields


def _operations() -> list[tuple[str, str]]:
    return [(s, op) for s in SERVICES for op in shapes.load(s).operations]


def _error(model: shapes.ServiceModel, operation: str, params) -> shapes.ShapeError | None:
    try:
        model.validate(operation, params)
    except shapes.ShapeError as exc:
        return exc
    return None


def _check(model: shapes.ServiceModel, case: Case) -> None:
    error = _error(model, case.operation, case.params)
    assert error is not None, f"{case.operation}: {case.what} accepted: {case.params!r:.300}"
    expected_code = getattr(model.faults, case.code_kind)
    assert error.code == expected_code, (case.what, error.code, error.message)
    assert case.expect in error.message, (case.what, case.expect, error.message)
    if case.code_kind == "constraint":
        assert error.message.startswith("1 validation error detected: "), error.message


def _prune(value):
    """`value` without empty structures, which the Query protocol cannot express."""
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v != {}}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


@pytest.mark.parametrize(("service", "operation"), _operations())
def test_every_constraint_of_every_operation_is_enforced(service: str, operation: str) -> None:
    model = shapes.load(service)
    generator = Generator(model)
    root = model.input_shape(operation)
    if root is None:
        return
    valid = generator.minimal(root)
    assert _error(model, operation, valid) is None, valid
    cases = list(generator.cases(operation))
    for case in cases:
        _check(model, case)
    # Only a pattern that accepts every string cannot be broken (CloudTrail's `(?s).*`).
    probe = "".join(BREAKERS) + "\r\u2028"
    for pattern in generator.unbreakable:
        assert compile_pattern(pattern).fullmatch(probe), pattern
    if model.protocol == "query":
        # The same inputs through the Query door's decoder.
        fields = query_fields(model, root, valid)
        assert query.decode(model, operation, fields) == _prune(valid)
        for case in [c for c in cases if c.code_kind == "constraint"]:
            decoded = query.decode(model, operation, query_fields(model, root, case.params))
            # An empty structure has no fields in the Query protocol: nothing to compare.
            if decoded == case.params:
                error = _error(model, operation, decoded)
                assert error is not None and case.expect in error.message, case


def test_the_walk_covers_every_kind_of_constraint() -> None:
    """The generated cases exercise each constraint kind the models use."""
    seen: dict[str, set[str]] = {}
    for service, operation in _operations():
        for case in Generator(shapes.load(service)).cases(operation):
            seen.setdefault(service, set()).add(case.what)
    assert {"type", "required", "enum", "min", "max", "pattern"} <= seen["ecr"]
    assert {"type", "required", "enum", "min", "max", "pattern"} <= seen["iam"]


ECR = shapes.load("ecr")


def _message(model: shapes.ServiceModel, operation: str, params) -> shapes.ShapeError:
    error = _error(model, operation, params)
    assert error is not None, params
    return error


def test_errors_are_counted_and_at_most_ten_listed() -> None:
    ids = [{"imageTag": ""} for _ in range(15)]
    error = _message(ECR, "BatchGetImage", {"repositoryName": "ab", "imageIds": ids})
    assert error.code == "InvalidParameterException"
    assert error.message.startswith("15 validation errors detected: Value '' at ")
    assert error.message.count("; ") == shapes.MAX_LISTED - 1


def test_an_overlong_list_is_not_walked() -> None:
    ids = [7] * 101  # over BatchGetImage's 100, each item of the wrong type too
    error = _message(ECR, "BatchGetImage", {"repositoryName": "ab", "imageIds": ids})
    assert error.code == "InvalidParameterException"
    assert "Member must have length less than or equal to 100" in error.message


def test_sensitive_values_are_not_echoed() -> None:
    secret = "s3cr3t-" * 20000
    error = _message(
        shapes.load("secretsmanager"), "PutSecretValue", {"SecretId": "x", "SecretString": secret}
    )
    assert "s3cr3t" not in error.message
    assert "Value at 'secretString' failed to satisfy constraint" in error.message


def test_deep_values_cost_no_recursion() -> None:
    deep: dict = {}
    for _ in range(100_000):
        deep = {"tagStatus": "ANY", "x": deep}
    ECR.validate("DescribeImages", {"repositoryName": "ab", "filter": deep})
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    error = _message(ECR, "DescribeImages", {"repositoryName": "ab", "imageIds": nested})
    assert error.code == "SerializationException"


def test_an_operation_outside_the_model_is_a_door_bug() -> None:
    with pytest.raises(KeyError):
        ECR.validate("NoSuchOperation", {})
