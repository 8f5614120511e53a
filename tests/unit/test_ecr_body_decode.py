"""The ECR door decodes a request body exactly as `json.loads(body or b"{}")` does, with the
encoding detection skipped for the UTF-8 object every SDK sends."""

from __future__ import annotations

import json

import pytest

from cargobay.ecr.api import _decode

BODIES = [
    b"",
    b"{}",
    b'{"repositoryName": "a/b"}',
    '{"a": "é日"}'.encode(),
    '{"a": 1}'.encode("utf-16-le"),
    '{"a": 1}'.encode("utf-16"),
    '{"a": 1}'.encode("utf-8-sig"),
    b'{"a": "\xed\xa0\x80"}',  # a lone surrogate, as json.loads lets it through
    b'{"a": "\xff"}',
    b"[1, 2]",
    b"{",
    b"{\x00",
    b"null",
]


def _outcome(decode, body: bytes):
    try:
        return decode(body)
    except ValueError as exc:
        return type(exc)


@pytest.mark.parametrize("body", BODIES)
def test_a_body_decodes_as_json_loads_decodes_it(body: bytes) -> None:
    assert _outcome(_decode, body) == _outcome(lambda b: json.loads(b or b"{}"), body)
