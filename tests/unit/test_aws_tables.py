"""The compact tables: equal to what botocore generates, complete for the implemented
operations, and loaded without botocore."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cargobay.aws import generate, shapes
from cargobay.aws.regex import PatternUnsupported, compile_pattern


@pytest.mark.parametrize("service", generate.SERVICES)
def test_checked_in_table_equals_a_fresh_generation(service: str) -> None:
    shipped = (generate.MODELS / f"{service}.json").read_text()
    assert shipped == generate.generate(service), (
        f"regenerate with `python -m cargobay.aws.generate {service}`"
    )


@pytest.mark.parametrize("service", generate.SERVICES)
def test_every_pattern_in_the_tables_compiles(service: str) -> None:
    patterns = {s["pattern"] for s in shapes.load(service).shapes.values() if "pattern" in s}
    unsupported = []
    for pattern in patterns:
        try:
            compile_pattern(pattern)
        except PatternUnsupported:
            unsupported.append(pattern)
    assert patterns and unsupported == []


def test_every_implemented_operation_is_in_its_model() -> None:
    from cargobay.ecr import actions  # noqa: F401  (registers the ECR actions)
    from cargobay.ecr.api import ACTIONS as ECR
    from cargobay.iamapi import actions as _iam  # noqa: F401  (registers the IAM actions)
    from cargobay.iamapi.context import ACTIONS as IAM

    assert len(ECR) > 20 and set(ECR) <= set(shapes.load("ecr").operations)
    assert len(IAM) > 10 and set(IAM) <= set(shapes.load("iam").operations)


def test_validating_loads_no_botocore() -> None:
    code = (
        "import sys, json\n"
        "from cargobay.aws import query, shapes\n"
        "shapes.validate('ecr', 'DescribeImages', {'repositoryName': 'ab'})\n"
        "m = shapes.load('iam')\n"
        "m.validate('ListUsers', query.decode(m, 'ListUsers', {'MaxItems': '5'}))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert not [m for m in loaded if m.startswith(("botocore", "boto3"))]


def test_tables_are_package_data() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    data = pyproject["tool"]["setuptools"]["package-data"]["cargobay.aws"]
    assert data == ["models/*.json"]
    assert {p.stem for p in generate.MODELS.glob("*.json")} == set(generate.SERVICES)
