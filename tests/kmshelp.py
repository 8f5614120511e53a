"""Helpers for the KMS tests: a KmsService on the selected metadata backend (SQLite, or
PostgreSQL with CARGOBAY_TEST_DATABASE=postgres), and a check that a response has exactly the
shape botocore's `kms` model gives it (members, types, enums, ranges)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from botocore.loaders import Loader
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

import pgcluster
from cargobay.iam.secrets import SecretBox, new_key
from cargobay.kms.service import KmsService
from cargobay.metadata import migrations
from cargobay.metadata.db import Database

ACCOUNT = "123456789012"
OTHER_ACCOUNT = "210987654321"
REGION = "us-east-1"


class Clock:
    """A settable clock, so waiting periods pass without waiting."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def database_url(tmp_path: Path) -> str:
    if pgcluster.backend() == "postgres":
        cluster = pgcluster.shared_cluster()
        url = cluster.url(cluster.database_for(tmp_path))
    else:
        url = f"sqlite:///{tmp_path / 'kms.db'}"
    await migrations.upgrade(url)
    return url


async def kms_service(tmp_path: Path, clock: Clock | None = None) -> KmsService:
    db = Database(await database_url(tmp_path))
    return KmsService(db, SecretBox(new_key()), REGION, clock=clock or Clock())


@functools.cache
def kms_model() -> ServiceModel:
    return ServiceModel(Loader().load_service_model("kms", "service-2"), "kms")


def _check(value: Any, shape: Shape, where: str) -> None:
    enum = shape.metadata.get("enum")
    if enum:
        assert value in enum, f"{where}: {value!r} not in {enum}"
    if shape.type_name == "structure":
        assert isinstance(value, dict), where
        unknown = set(value) - set(shape.members)
        assert not unknown, f"{where}: members not in the model: {unknown}"
        for name in shape.required_members:
            assert name in value, f"{where}: required member {name} missing"
        for name, member in value.items():
            _check(member, shape.members[name], f"{where}.{name}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            _check(item, shape.member, f"{where}[{i}]")


def assert_output_shape(operation: str, output: dict[str, Any]) -> None:
    """`output` is a valid response of `operation`: known members with their types
    (botocore's validator) and enum values from the model."""
    shape = kms_model().operation_model(operation).output_shape
    if shape is None:  # the operation answers with an empty body
        assert output == {}, output
        return
    report = ParamValidator().validate(output, shape)
    assert not report.has_errors(), report.generate_report()
    _check(output, shape, operation)
