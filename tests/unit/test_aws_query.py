"""The Query protocol decoder: shape-directed, strict about indices and scalars."""

from __future__ import annotations

import pytest

from cargobay.aws import query, shapes

IAM = shapes.load("iam")


def test_lists_of_structures_and_scalars() -> None:
    fields = {
        "UserName": "alice",
        "Path": "/team/",
        "Tags.member.2.Key": "b",
        "Tags.member.2.Value": "2",
        "Tags.member.1.Key": "a",
        "Tags.member.1.Value": "1",
        "Unknown": "ignored",
    }
    assert query.decode(IAM, "CreateUser", fields) == {
        "UserName": "alice",
        "Path": "/team/",
        "Tags": [{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}],
    }
    assert query.decode(IAM, "ListUsers", {"MaxItems": "10"}) == {"MaxItems": 10}
    assert query.decode(IAM, "UntagUser", {"UserName": "a", "TagKeys": ""})["TagKeys"] == []


@pytest.mark.parametrize(
    "field",
    [
        "Tags.member.².Key",
        "Tags.member.0.Key",
        "Tags.member.x.Key",
        "Tags.member." + "9" * 5000 + ".Key",
        "Tags.member.-1.Key",
        "Tags.member. 1.Key",
    ],
)
def test_bad_list_indices_are_validation_errors(field: str) -> None:
    with pytest.raises(shapes.ShapeError) as info:
        query.decode(IAM, "CreateUser", {"UserName": "alice", field: "k"})
    assert info.value.code == "ValidationError"
    assert len(info.value.message) < 400


@pytest.mark.parametrize("raw", ["abc", "1.5", "²", "9" * 5000, "", " 1"])
def test_bad_integers_are_validation_errors(raw: str) -> None:
    with pytest.raises(shapes.ShapeError) as info:
        query.decode(IAM, "ListUsers", {"MaxItems": raw})
    assert info.value.code == "ValidationError"
