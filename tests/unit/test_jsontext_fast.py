"""`jsontext.answer` and `jsontext.request_object` (orjson where installed) give what the
standard module gives: the same value for every text `json.loads` takes, the same refusal for
every text it refuses, and answers that decode to the value encoded."""

from __future__ import annotations

import json
import math

import pytest
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


@given(_values)
def test_request_objects_are_what_json_loads_makes(value: object) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        body = text.encode("utf-8", "surrogatepass")
        mine, theirs = jsontext.request_object(body), json.loads(body)
        assert json.dumps(mine) == json.dumps(theirs)  # NaN-proof, and int stays int
        assert type(mine) is type(theirs)


def _judged(decode, body: bytes) -> tuple[str, str]:
    try:
        value = decode(body)
    except (ValueError, RecursionError) as exc:
        return "refused", "recursion" if isinstance(exc, RecursionError) else "value"
    try:
        return "value", json.dumps(value)  # NaN-proof, and 1 != 1.0 in the text
    except RecursionError:  # too deep to write back: compare the depth instead
        depth = 0
        while isinstance(value, list) and value:
            value, depth = value[0], depth + 1
        return "value", f"depth {depth}"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b'{"a": "\\ud800"}',  # a lone surrogate: orjson refuses, json takes
        b'{"a": NaN, "b": -Infinity}',
        b'{"a": 1, "a": 2}',
        b'{"n": 123456789012345678901234567890}',
        b'{"n": -9223372036854775809}',
        b'{"n": 18446744073709551616}',
        b'{"n": 1e400}',
        b'{"n": 123456789012345678}',
        b"\xef\xbb\xbf{}",  # a BOM
        '{"a": "é"}'.encode("utf-16"),
        b'{"a": "\xff"}',  # not UTF-8
        b"{x",
        b"[" * 5000 + b"]" * 5000,
        b"[" * 256 + b"]" * 256,
        b'{"a": [' + b"{}," * 300 + b"{}]}",
    ],
)
def test_odd_bodies_are_judged_as_json_loads_judges_them(body: bytes) -> None:
    assert _judged(jsontext.request_object, body) == _judged(json.loads, body or b"{}")
