"""Verifying AWS Signature Version 4 on incoming ECR API requests.

The expected signature is recomputed the way botocore's signer (`botocore.auth.SigV4Auth`)
computes it, with botocore's own path normalisation and quoting, so whatever the AWS CLI and
boto3 sign, we canonicalise the same way (tests/unit/test_sigv4.py checks it against botocore).
The canonical request and the HMAC chain are built here with hashlib and hmac rather than
through botocore's request objects, which cost half of a verification; the derived signing key
is remembered per (secret, date, region, service), as AWS allows, in a small bounded cache
(`SigningKeys`). The decision is never cached: every request's signature is recomputed.

Errors carry AWS's error type, message and HTTP status, as an AWS JSON 1.1 service (ECR, ECS,
DynamoDB) answers them: `{"__type": err.code, "message": err.message}` with status `err.status`.

`path` is the request path exactly as it came over the wire (still percent-encoded, without the
query string); `query_string` is the raw query string (without `?`). Both are canonicalised the
way botocore does it when signing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import parse_qsl

from botocore.auth import SIGV4_TIMESTAMP

from cargobay.iam.sigv4keys import SigningKeys, canonical_request

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600  # what AWS allows for X-Amz-Expires

# AWS error types and the HTTP status an AWS JSON 1.1 service returns with each.
MISSING_TOKEN = "MissingAuthenticationTokenException"
INCOMPLETE_SIGNATURE = "IncompleteSignatureException"
UNRECOGNIZED_CLIENT = "UnrecognizedClientException"
INVALID_SIGNATURE = "InvalidSignatureException"
STATUS = {
    MISSING_TOKEN: 403,
    INCOMPLETE_SIGNATURE: 400,
    UNRECOGNIZED_CLIENT: 400,
    INVALID_SIGNATURE: 400,
}

MSG_MISSING_TOKEN = "Missing Authentication Token"
MSG_UNRECOGNIZED_CLIENT = "The security token included in the request is invalid."
MSG_SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)

SIGNING_KEYS = SigningKeys()  # this process's derived keys, shared by every verification
_HEX64 = re.compile(r"[0-9a-f]{64}")
_BASIC_TIMESTAMP = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
_EXPIRES = re.compile(r"[0-9]{1,9}")
_SEPARATORS = re.compile(r"[,\s]+")
# The Authorization header as every SDK writes it; parsed in one match. What it accepts is
# exactly what the general parse (`_fields`) makes of such a header; anything else goes there.
_SDK_AUTHORIZATION = re.compile(
    r"Credential=([^,\s]+), ?SignedHeaders=([^,\s]+), ?Signature=([^,\s]+)"
)


class SigV4Error(Exception):
    """A request that is not (correctly) signed; render as AWS JSON `{"__type", "message"}`."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = STATUS.get(code, 400) if status is None else status


class SignedIdentity(NamedTuple):
    """Who signed, for which region and service (a NamedTuple: built on every call)."""

    access_key_id: str
    region: str
    service: str


class _Auth(NamedTuple):
    """The signature parameters, wherever they came from (header or query). A NamedTuple: a
    frozen dataclass's construction costs a microsecond or two on every call."""

    access_key_id: str
    scope_date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    timestamp: str | None = None  # X-Amz-Date from the query (presigned only)
    expires: int | None = None  # X-Amz-Expires (presigned only)


def _fail(code: str, message: str) -> SigV4Error:
    return SigV4Error(code, message)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, list[str]]:
    # items() of a multidict (aiohttp's CIMultiDictProxy) yields every value of a repeated header.
    out: dict[str, list[str]] = {}
    for name, value in headers.items():
        key = name.lower().strip()
        found = out.get(key)
        if found is None:
            out[key] = [value]
        else:
            found.append(value)
    return out


# The scope and the signed-header list of a key's requests repeat (the signature does not):
# each text is parsed once. A text that fails raises every time (nothing is kept for it).
@lru_cache(maxsize=256)
def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5:
        raise _fail(
            INCOMPLETE_SIGNATURE,
            "Credential must have exactly 5 slash-delimited elements, e.g. "
            f"keyid/date/region/service/term, got '{credential}'",
        )
    key_id, date, region, service, terminator = parts
    if terminator != TERMINATOR:
        raise _fail(
            INVALID_SIGNATURE,
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{terminator}'.",
        )
    if not key_id:
        raise _fail(INCOMPLETE_SIGNATURE, f"Credential has an empty access key id: '{credential}'")
    if not region:
        raise _fail(INVALID_SIGNATURE, "Credential should be scoped to a valid region.")
    return key_id, date, region, service


@lru_cache(maxsize=256)
def _parse_signed_headers(value: str) -> tuple[str, ...]:
    names = tuple([n.strip().lower() for n in value.split(";")])
    if not all(names):
        raise _fail(INCOMPLETE_SIGNATURE, f"Invalid SignedHeaders value: '{value}'")
    if "host" not in names and ":authority" not in names:
        raise _fail(
            INCOMPLETE_SIGNATURE,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        )
    return names


def _parse_authorization(header: str, has_date: bool) -> _Auth:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _fail(INCOMPLETE_SIGNATURE, f"Unsupported AWS 'algorithm': '{algorithm}'.")
    rest = rest.strip()
    if has_date and (sdk := _SDK_AUTHORIZATION.fullmatch(rest)):
        credential, signed, signature = sdk.groups()
    else:
        fields = _fields(header, rest, has_date)
        credential, signed, signature = (
            fields["Credential"],
            fields["SignedHeaders"],
            fields["Signature"],
        )
    key_id, date, region, service = _parse_credential(credential)
    # Positional: a NamedTuple's keywords cost a second pass on every call.
    return _Auth(key_id, date, region, service, _parse_signed_headers(signed), signature, False)


def _fields(header: str, rest: str, has_date: bool) -> dict[str, str]:
    """The Authorization header's key=value pairs, with AWS's message for what is missing."""
    fields: dict[str, str] = {}
    for part in _SEPARATORS.split(rest):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            raise _fail(
                INCOMPLETE_SIGNATURE,
                f"'{part}' not a valid key=value pair (missing equal-sign) in Authorization "
                f"header: '{header}'.",
            )
        fields[key] = value
    problems = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    if not has_date:
        problems.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if problems:
        raise _fail(INCOMPLETE_SIGNATURE, " ".join([*problems, f"Authorization={header}"]))
    return fields


def _parse_presigned(query: dict[str, str]) -> _Auth:
    problems = [
        f"AWS query-string parameters must include '{name}'."
        for name in (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Signature",
            "X-Amz-SignedHeaders",
            "X-Amz-Date",
        )
        if not query.get(name)
    ]
    if problems:
        raise _fail(
            INCOMPLETE_SIGNATURE, " ".join(problems) + " Re-examine the query-string parameters."
        )
    if query["X-Amz-Algorithm"] != ALGORITHM:
        raise _fail(
            INCOMPLETE_SIGNATURE, f"Unsupported AWS 'algorithm': '{query['X-Amz-Algorithm']}'."
        )
    raw_expires = query.get("X-Amz-Expires", "")
    # ASCII digits only (`'²'.isdigit()` is true) and short, so int() can neither fail nor hit
    # Python's digit limit.
    if not _EXPIRES.fullmatch(raw_expires) or not 0 < int(raw_expires) <= MAX_PRESIGN_EXPIRES:
        raise _fail(
            INCOMPLETE_SIGNATURE,
            f"X-Amz-Expires must be a whole number of seconds from 1 to {MAX_PRESIGN_EXPIRES}, "
            f"got '{raw_expires}'.",
        )
    key_id, date, region, service = _parse_credential(query["X-Amz-Credential"])
    return _Auth(
        access_key_id=key_id,
        scope_date=date,
        region=region,
        service=service,
        signed_headers=_parse_signed_headers(query["X-Amz-SignedHeaders"]),
        signature=query["X-Amz-Signature"],
        presigned=True,
        timestamp=query["X-Amz-Date"],
        expires=int(raw_expires),
    )


# Timestamps as parsed, by their text: the requests of one second share one (bounded).
_TIMES: dict[str, datetime] = {}
_MAX_TIMES = 256


def _parse_timestamp(value: str) -> datetime:
    when = _TIMES.get(value)
    if when is None:
        when = _parse_new_timestamp(value)
        if len(_TIMES) >= _MAX_TIMES:
            _TIMES.clear()
        _TIMES[value] = when
    return when


def _parse_new_timestamp(value: str) -> datetime:
    try:
        # The form every SDK sends, without strptime (a sixth of a verification); anything
        # else still goes through strptime, so what it accepts is unchanged.
        if match := _BASIC_TIMESTAMP.fullmatch(value):
            return datetime(*map(int, match.groups()), tzinfo=UTC)
        return datetime.strptime(value, SIGV4_TIMESTAMP).replace(tzinfo=UTC)
    except ValueError:
        raise _fail(
            INCOMPLETE_SIGNATURE,
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601",
        ) from None


def _request_time(auth: _Auth, headers: dict[str, list[str]]) -> tuple[str, datetime]:
    """The signing timestamp (as signed, `YYYYMMDDTHHMMSSZ`) and its datetime."""
    if auth.timestamp is not None:
        return auth.timestamp, _parse_timestamp(auth.timestamp)
    if "x-amz-date" in headers:
        value = headers["x-amz-date"][0].strip()
        return value, _parse_timestamp(value)
    # botocore signs with the Date header (RFC 7231 form) when one is present instead.
    value = headers["date"][0]
    try:
        when = parsedate_to_datetime(value)
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):  # year 9999 at -2359 overflows
        raise _fail(
            INCOMPLETE_SIGNATURE, f"Date header is not a valid HTTP date: '{value}'"
        ) from None
    return when.strftime(SIGV4_TIMESTAMP), when


def _fmt(when: datetime) -> str:
    return when.astimezone(UTC).strftime(SIGV4_TIMESTAMP)


def _check_time(auth: _Auth, ts: str, when: datetime, now: datetime, max_skew: timedelta) -> None:
    if when > now + max_skew:
        raise _fail(
            INVALID_SIGNATURE,
            f"Signature not yet current: {ts} is still later than {_fmt(now + max_skew)} "
            f"({_fmt(now)} + {_minutes(max_skew)})",
        )
    if auth.expires is not None:  # presigned: valid from X-Amz-Date for X-Amz-Expires seconds
        if when < now - timedelta(seconds=auth.expires):
            lifetime = timedelta(seconds=auth.expires)
            raise _fail(
                INVALID_SIGNATURE,
                f"Signature expired: {ts} is now earlier than {_fmt(now - lifetime)} "
                f"({_fmt(now)} - {auth.expires} sec.)",
            )
    elif when < now - max_skew:
        raise _fail(
            INVALID_SIGNATURE,
            f"Signature expired: {ts} is now earlier than {_fmt(now - max_skew)} "
            f"({_fmt(now)} - {_minutes(max_skew)})",
        )


def _minutes(skew: timedelta) -> str:
    return f"{int(skew.total_seconds() // 60)} min."


class Signed(NamedTuple):
    """A request whose signature parameters, time and payload hash have been checked
    (`signed_request`); `check` with the signer's secret decides the signature itself."""

    method: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[str, list[str]]
    auth: _Auth
    timestamp: str
    payload_hash: str

    @property
    def access_key_id(self) -> str:
        return self.auth.access_key_id


def signed_request(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
    expected_service: str = "ecr",
    expected_regions: tuple[str, ...] | None = None,
) -> Signed:
    """Everything `verify` checks before it needs the signer's secret (SigV4Error if any of
    it fails): the Authorization header or query parameters, the credential scope, the time
    window and the payload hash."""
    lowered = _lower_headers(headers)
    # The ECR API's calls have no query string: nothing to parse.
    query = parse_qsl(query_string, keep_blank_values=True) if query_string else []
    query_auth = {k: v for k, v in query if k.startswith("X-Amz-")} if query else {}
    authorization = lowered["authorization"][0].strip() if "authorization" in lowered else ""
    presigned = "X-Amz-Algorithm" in query_auth or "X-Amz-Signature" in query_auth

    if authorization and presigned:
        raise _fail(
            INCOMPLETE_SIGNATURE,
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the "
            "Authorization header should be specified",
        )
    if presigned:
        auth = _parse_presigned(query_auth)
        params = [(k, v) for k, v in query if k != "X-Amz-Signature"]
    elif authorization:
        auth = _parse_authorization(authorization, "x-amz-date" in lowered or "date" in lowered)
        params = query
    else:
        raise _fail(MISSING_TOKEN, MSG_MISSING_TOKEN)

    if auth.service != expected_service:
        raise _fail(
            INVALID_SIGNATURE,
            f"Credential should be scoped to correct service: '{expected_service}'. ",
        )
    if expected_regions is not None and auth.region not in expected_regions:
        raise _fail(INVALID_SIGNATURE, "Credential should be scoped to a valid region. ")
    ts, when = _request_time(auth, lowered)
    if auth.scope_date != ts[:8]:
        raise _fail(
            INVALID_SIGNATURE,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
            f"HTTP: '{auth.scope_date}' != '{ts[:8]}', from '{ts}'.",
        )
    now = datetime.now(UTC) if now is None else now
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    _check_time(auth, ts, when, now, max_skew)

    payload_hash = hashlib.sha256(body).hexdigest()
    claimed = lowered.get("x-amz-content-sha256")
    if claimed is not None and claimed[0].strip() != payload_hash:
        # UNSIGNED-PAYLOAD lands here too: the ECR API's parameters are in the body, so it must
        # be covered by the signature.
        raise _fail(
            INVALID_SIGNATURE,
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    return Signed(method, path or "/", params, lowered, auth, ts, payload_hash)


def check(
    signed: Signed, secret: str | None, signing_keys: SigningKeys | None = None
) -> SignedIdentity:
    """The signer's identity if `secret` (None: no such active key) signed `signed`;
    SigV4Error otherwise. The signature is recomputed on every call: only the derived
    signing key is cached (`signing_keys`, the process-wide cache by default)."""
    if secret is None:
        raise _fail(UNRECOGNIZED_CLIENT, MSG_UNRECOGNIZED_CLIENT)
    auth, ts = signed.auth, signed.timestamp
    canonical = canonical_request(
        signed.method,
        signed.path,
        signed.params,
        auth.signed_headers,
        signed.headers,
        signed.payload_hash,
    )
    scope = f"{ts[:8]}/{auth.region}/{auth.service}/{TERMINATOR}"
    string_to_sign = "\n".join(
        (ALGORITHM, ts, scope, hashlib.sha256(canonical.encode()).hexdigest())
    )
    keys = SIGNING_KEYS if signing_keys is None else signing_keys
    mac = keys.mac(secret, ts[:8], auth.region, auth.service)
    expected = mac.digest(string_to_sign.encode()).hex()
    provided = auth.signature.strip().lower()
    # Both ASCII once `provided` is 64 hex digits: compare_digest takes the strings as they are.
    if not _HEX64.fullmatch(provided) or not hmac.compare_digest(expected, provided):
        raise _fail(INVALID_SIGNATURE, MSG_SIGNATURE_MISMATCH)
    return SignedIdentity(auth.access_key_id, auth.region, auth.service)


async def verify(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    body: bytes,
    secret_for: Callable[[str], Awaitable[str | None]],
    *,
    now: datetime | None = None,
    max_skew: timedelta = timedelta(minutes=15),
    expected_service: str = "ecr",
    expected_regions: tuple[str, ...] | None = None,
    signing_keys: SigningKeys | None = None,
) -> SignedIdentity:
    """Check a request's SigV4 signature; the signer's identity, or SigV4Error.

    `secret_for(access_key_id)` returns the plaintext secret of an active key, or None. The
    credential scope must name `expected_service` and, when given, one of `expected_regions`
    (the deployment's region), as AWS refuses a signature scoped to another service or region.
    Derived signing keys come from `signing_keys` (the process-wide cache by default).
    """
    signed = signed_request(
        method,
        path,
        query_string,
        headers,
        body,
        now=now,
        max_skew=max_skew,
        expected_service=expected_service,
        expected_regions=expected_regions,
    )
    return check(signed, await secret_for(signed.auth.access_key_id), signing_keys)
