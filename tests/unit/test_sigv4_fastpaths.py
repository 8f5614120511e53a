"""The shortcuts of a SigV4 verification (the SDK's Authorization form parsed in one match,
the path "/", each signed header once) give exactly what the general code gives."""

from __future__ import annotations

import pytest
from botocore.utils import normalize_url_path

from cargobay.iam import sigv4, sigv4keys
from cargobay.iam.sigv4 import SigV4Error

CREDENTIAL = "AKIAEXAMPLE/20261130/us-east-1/ecr/aws4_request"
SIGNATURE = "a" * 64


def _general(header: str, has_date: bool = True) -> sigv4._Auth:
    """The header parsed by the general path alone."""
    rest = header.strip().partition(" ")[2].strip()
    fields = sigv4._fields(header, rest, has_date)
    key_id, date, region, service = sigv4._parse_credential(fields["Credential"])
    return sigv4._Auth(
        key_id,
        date,
        region,
        service,
        sigv4._parse_signed_headers(fields["SignedHeaders"]),
        fields["Signature"],
        False,
    )


@pytest.mark.parametrize(
    "header",
    [
        f"AWS4-HMAC-SHA256 Credential={CREDENTIAL}, SignedHeaders=host;x-amz-date, "
        f"Signature={SIGNATURE}",
        f"AWS4-HMAC-SHA256 Credential={CREDENTIAL},SignedHeaders=Host;X-Amz-Date,"
        f"Signature={SIGNATURE}",
        f"AWS4-HMAC-SHA256  Credential={CREDENTIAL},  SignedHeaders=host, Signature={SIGNATURE} ",
        f"AWS4-HMAC-SHA256 Signature={SIGNATURE}, Credential={CREDENTIAL}, SignedHeaders=host",
        f"AWS4-HMAC-SHA256 Credential={CREDENTIAL}, SignedHeaders=host, Signature=x=y",
    ],
)
def test_authorization_shortcut_parses_as_the_general_path(header: str) -> None:
    assert sigv4._parse_authorization(header, True) == _general(header)


def test_authorization_shortcut_keeps_the_general_errors() -> None:
    header = f"AWS4-HMAC-SHA256 Credential={CREDENTIAL}, SignedHeaders=host, Signature={SIGNATURE}"
    with pytest.raises(SigV4Error) as no_date:
        sigv4._parse_authorization(header, False)
    assert "'X-Amz-Date' or a 'Date' header" in no_date.value.message
    with pytest.raises(SigV4Error) as no_host:
        sigv4._parse_authorization(header.replace("=host", "=x-amz-date"), True)
    assert "'Host' or ':authority'" in no_host.value.message
    with pytest.raises(SigV4Error) as bad_scope:
        sigv4._parse_authorization(header.replace("aws4_request", "aws5_request"), True)
    assert bad_scope.value.code == sigv4.INVALID_SIGNATURE


def test_root_path_is_what_botocore_normalises_it_to() -> None:
    assert sigv4keys._canonical_path("/") == normalize_url_path("/") == "/"
    assert sigv4keys._canonical_path("/a/./b//c") == "/a/b/c"


@pytest.mark.parametrize(
    "signed",
    [
        ("x-amz-date", "host", "content-type"),
        ("host", "x-missing", "x-amz-target"),
        ("host", "host", "x-amz-date"),
    ],
)
def test_canonical_headers_once_each_as_in_general(signed: tuple[str, ...]) -> None:
    headers = {
        "host": ["example.com"],
        "x-amz-date": ["20261130T000000Z"],
        "content-type": ["  application/x-amz-json-1.1 "],
        "x-amz-target": ["a  b", "c\td"],
    }
    block, names = sigv4keys._canonical_headers(signed, headers)
    # The general path, written out: values gathered per listed name, then sorted.
    values: dict[str, list[str]] = {}
    for name in signed:
        for value in headers.get(name, []):
            values.setdefault(name, []).append(" ".join(value.split()))
    expected = "".join(f"{n}:{','.join(values[n])}\n" for n in sorted(values))
    assert (block, names) == (expected, ";".join(sorted(values)))
    assert "x-missing" not in names


def test_remembered_parses_give_what_a_fresh_parse_gives_and_failures_fail_again() -> None:
    sigv4._TIMES.clear()
    first = sigv4._parse_timestamp("20261130T120000Z")
    assert (
        sigv4._parse_timestamp("20261130T120000Z")
        == first
        == sigv4._parse_new_timestamp("20261130T120000Z")
    )
    assert sigv4._parse_timestamp("20261130T120001Z") != first
    for _ in range(2):  # a text that fails is never remembered
        with pytest.raises(SigV4Error, match="basic format"):
            sigv4._parse_timestamp("20261130T126000Z")
    for i in range(sigv4._MAX_TIMES + 10):  # bounded
        sigv4._parse_timestamp(f"2026112{i % 10}T12{i // 60 % 60:02d}{i % 60:02d}Z")
    assert len(sigv4._TIMES) <= sigv4._MAX_TIMES
    assert sigv4._parse_credential(CREDENTIAL) == ("AKIAEXAMPLE", "20261130", "us-east-1", "ecr")
    for _ in range(2):
        with pytest.raises(SigV4Error, match="terminator"):
            sigv4._parse_credential(CREDENTIAL.replace("aws4_", "aws5_"))
        with pytest.raises(SigV4Error, match="'Host' or ':authority'"):
            sigv4._parse_signed_headers("x-amz-date")
    assert sigv4._parse_signed_headers("Host;X-Amz-Date") == ("host", "x-amz-date")


def test_an_empty_query_is_canonically_empty() -> None:
    assert sigv4keys._canonical_query([]) == ""
    assert sigv4keys._canonical_query([("b", "2"), ("a", "1 ")]) == "a=1%20&b=2"
