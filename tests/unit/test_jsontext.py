"""The request path's JSON encoders write what json.dumps writes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from cargobay import jsontext

VALUES: list[Any] = [
    {},
    [],
    "plain",
    'quote " backslash \\ control \x01 é \u2028 \U0001f600',
    0,
    -(2**70),
    1.5,
    1e16,
    0.1 + 0.2,
    math.inf,
    True,
    None,
    {"images": [{"imageId": {"imageDigest": "sha256:00", "imageTag": "v1"}, "n": 3}], "x": None},
    {"nested": [[1, [2, [3, {"k": "v"}]]]], "b": False, "f": -0.0},
    {1: "an int key", "2": "a string key"},
]


@pytest.mark.parametrize("value", VALUES)
def test_the_encoders_write_what_json_dumps_writes(value: Any) -> None:
    assert jsontext.dumps(value) == json.dumps(value)
    assert jsontext.compact(value) == json.dumps(value, separators=(",", ":"))


def test_what_json_cannot_hold_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        jsontext.dumps({"a": object()})
    with pytest.raises(TypeError):
        jsontext.compact({object(): 1})
