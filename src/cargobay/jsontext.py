"""JSON text for what every request writes (an AWS door's answer, its audit record), from one
encoder made once per process.

`json.dumps` and `JSONEncoder.encode` build a new C encoder object on every call, with its
arguments gathered in Python first: about 25,000 instructions, more than encoding an ECR answer
itself (callgrind). The encoders here are that same C encoder, made once, and write the same
text as `json.dumps` with the same separators. They do not check for circular references (a
decoded request and the dicts built from it cannot hold any; a cycle would end in
RecursionError rather than ValueError).

`answer` uses orjson where it is installed (a runtime dependency): about a fifth of the C
encoder's CPU for an API answer's few hundred bytes, the standard encoder for anything orjson
refuses. Requests are still decoded by the standard module: orjson reads an integer beyond 64
bits as a float and nests deeper, and telling such texts apart first cost what it saved.
"""

from __future__ import annotations

import json
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
