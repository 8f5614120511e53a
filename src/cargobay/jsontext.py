"""JSON text for what every request writes (an AWS door's answer, its audit record), from one
encoder made once per process.

`json.dumps` and `JSONEncoder.encode` build a new C encoder object on every call, with its
arguments gathered in Python first: about 25,000 instructions, more than encoding an ECR answer
itself (callgrind). The encoders here are that same C encoder, made once, and write the same
text as `json.dumps` with the same separators. They do not check for circular references (a
decoded request and the dicts built from it cannot hold any; a cycle would end in
RecursionError rather than ValueError).

`answer` and `request_object` use orjson where it is installed (a runtime dependency), about a
fifth of the C encoder's and decoder's CPU for an API call's few hundred bytes, and fall back
to the standard module for anything orjson refuses, so what either accepts is unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import c_make_encoder, encode_basestring_ascii
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - a checkout without its dependencies installed
    orjson = None  # type: ignore[assignment]


def _encoder(item_separator: str, key_separator: str) -> Callable[[Any], str]:
    if c_make_encoder is None:  # a Python without the _json accelerator
        return json.JSONEncoder(separators=(item_separator, key_separator)).encode
    make = c_make_encoder(
        None,  # no circular-reference markers
        json.JSONEncoder().default,  # TypeError for what JSON cannot hold
        encode_basestring_ascii,
        None,  # no indent
        key_separator,
        item_separator,
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )

    def encode(value: Any) -> str:
        return "".join(make(value, 0))

    return encode


_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_FEW_BRACKETS = 256  # so few that the standard decoder nests as deep without a RecursionError

dumps = _encoder(", ", ": ")  # as json.dumps(value)
compact = _encoder(",", ":")  # as json.dumps(value, separators=(",", ":"))


def answer(value: Any) -> bytes:
    """An API answer's JSON as UTF-8 bytes: the same value as `dumps(value)` (compact, and
    non-ASCII characters as themselves rather than escaped; a NaN or infinite float, which
    no answer holds, as null rather than the standard module's non-JSON `NaN`). What orjson
    does not take (a non-string key, an integer beyond 64 bits) is written by `dumps`."""
    if orjson is not None:
        try:
            return orjson.dumps(value)
        except TypeError:
            pass
    return dumps(value).encode()


def request_object(body: bytes) -> Any:
    """`json.loads(body or b"{}")`: orjson's value where it decodes the text (it refuses lone
    surrogates, NaN, overflowing exponents and anything not UTF-8), else the standard
    decoder's judgement, with `json.loads`' own errors. A text with 19 digits in a row goes to
    the standard decoder too (orjson reads an integer beyond 64 bits as a float), and so does
    one with many brackets (orjson nests deeper than the standard decoder's RecursionError).
    A body that opens with `{` and a non-NUL byte is UTF-8 to `json.detect_encoding`: decoded
    as `json.loads` would (surrogatepass), the detection skipped."""
    if (
        orjson is not None
        and body
        and body.count(b"[") + body.count(b"{") <= _FEW_BRACKETS
        and not _LONG_DIGITS.search(body)
    ):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    if body[:1] == b"{" and body[1:2] != b"\0":
        return json.loads(body.decode("utf-8", "surrogatepass"))
    return json.loads(body or b"{}")
