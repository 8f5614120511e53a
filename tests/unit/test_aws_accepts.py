"""The quick yes (`aws.accepts`) never accepts what the walk (`aws.shapes`) would refuse: every
operation of every shipped table, its minimal valid input and every generated broken input
(tests/shapecases.py), plus mutations of valid inputs."""

from __future__ import annotations

import pytest

from cargobay.aws import shapes
from cargobay.aws.generate import SERVICES
from shapecases import Generator


def _operations() -> list[tuple[str, str]]:
    return [(s, op) for s in SERVICES for op in shapes.load(s).operations]


def _walk_finds(model: shapes.ServiceModel, root: str, params) -> bool:
    walk = shapes._Walk(model, model.faults)
    try:
        walk.run(root, params)
    except shapes.ShapeError:
        return True
    return walk.count > 0


def _mutations(value):
    """`value` with one member or item replaced by a value of another type, or dropped."""
    if isinstance(value, dict):
        for key, item in value.items():
            for other in (None, 7, "x", [], {}, True, 1.5, float("nan"), "\ud800"):
                yield {**value, key: other}
            yield {k: v for k, v in value.items() if k != key}
            for changed in _mutations(item):
                yield {**value, key: changed}
    elif isinstance(value, list):
        for i, item in enumerate(value):
            for changed in _mutations(item):
                yield [*value[:i], changed, *value[i + 1 :]]
        yield [*value, *value]


@pytest.mark.parametrize(("service", "operation"), _operations())
def test_the_quick_yes_agrees_with_the_walk(service: str, operation: str) -> None:
    model = shapes.load(service)
    root = model.input_shape(operation)
    if root is None:
        return
    accept = model._accepts.root(root)
    generator = Generator(model)
    valid = generator.minimal(root)
    inputs = [valid, *(case.params for case in generator.cases(operation))]
    inputs += list(_mutations(valid))[:300]
    for params in inputs:
        if accept(params):
            assert not _walk_finds(model, root, params), params


def test_the_reads_of_the_hot_path_take_the_quick_yes() -> None:
    ecr = shapes.load("ecr")
    digest = "sha256:" + "a" * 64
    calls = {
        "GetDownloadUrlForLayer": {"repositoryName": "bench/api", "layerDigest": digest},
        "BatchGetImage": {"repositoryName": "bench/api", "imageIds": [{"imageTag": "v1"}]},
        "BatchCheckLayerAvailability": {"repositoryName": "bench/api", "layerDigests": [digest]},
        "DescribeImages": {"repositoryName": "bench/api", "maxResults": 100},
        "GetAuthorizationToken": {},
    }
    for operation, params in calls.items():
        assert ecr._accepts.root(ecr.input_shape(operation))(params), operation
    # ...and refuse what the walk refuses, which then says why.
    bad = {"repositoryName": "bench/api", "layerDigest": digest, "registryId": "12"}
    assert not ecr._accepts.root(ecr.input_shape("GetDownloadUrlForLayer"))(bad)
    with pytest.raises(shapes.ShapeError, match="registryId"):
        ecr.validate("GetDownloadUrlForLayer", bad)
