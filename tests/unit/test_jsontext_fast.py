"""`jsontext.answer` (orjson where installed) writes what the standard module writes: an
answer decodes to the value `jsontext.dumps` encodes, whatever orjson refuses included."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from cargobay import jsontext

_numbers = st.integers() | st.integers(-(2**80), 2**80) | st.floats(allow_nan=False)
_values = st.recursive(
    st.none() | st.booleans() | _numbers | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _finite(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


@given(_values)
def test_answers_decode_to_the_value(value: object) -> None:
    text = jsontext.answer(value)
    assert isinstance(text, bytes)
    if _finite(value):  # the standard module writes `Infinity`, which is not JSON
        assert json.loads(text) == json.loads(jsontext.dumps(value))


def test_answers_orjson_refuses_are_written_by_the_standard_encoder() -> None:
    assert json.loads(jsontext.answer({1: 2})) == {"1": 2}
    assert json.loads(jsontext.answer({"n": 2**70})) == {"n": 2**70}
