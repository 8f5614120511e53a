"""Signed S3 requests over `http.client`: addressing, a keep-alive connection pool, SigV4
(with `cargobay.iam.sigv4keys`), retries like botocore's standard mode, and S3's XML errors.

A body too large to hash for its signature goes as `UNSIGNED-PAYLOAD` with its CRC32 in
`x-amz-checksum-crc32`, which S3 checks, so a part damaged on the way (plain `http://`
endpoints have no TLS to catch it) is refused rather than stored. A `RequestTimeTooSkewed`
answer moves the signer's clock to the server's `Date` and the call is retried, as AWS's SDKs
correct a node whose clock drifted.

Calls are blocking and run in the store's threads (objects.py). A response body is either read
whole (the small XML answers) or handed out as a `Body` to stream, whose connection goes back
to the pool only once the body has been read to its end.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import http.client
import random
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from cargobay.iam.sigv4keys import SigningKeys, canonical_request
from cargobay.storage.s3.credentials import Credentials, CredentialSource

ALGORITHM = "AWS4-HMAC-SHA256"
TIMESTAMP = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
SIGN_BODY_BELOW = 1024 * 1024  # small bodies (state, XML) are hashed; pieces go unsigned
MAX_ATTEMPTS = 5  # as the boto3 client was configured: retries={"max_attempts": 5}
MAX_BACKOFF = 20.0  # seconds, botocore's standard mode cap
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 120.0
USER_AGENT = "cargobay-s3"
_RETRY_STATUS = frozenset({500, 502, 503, 504, 429})
_RETRY_CODES = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "RequestTimeoutException",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "PriorRequestNotComplete",
    }
)
_SKEW_CODES = frozenset({"RequestTimeTooSkewed"})
_UNSIGNED_HEADERS = frozenset({"user-agent", "expect", "content-length"})
NETWORK_ERRORS = (OSError, http.client.HTTPException)
_QUERY_SAFE = "-_.~"


class S3Error(Exception):
    """An error answer from S3: its code (`NoSuchKey`, `NoSuchUpload`, ... or the status when
    the answer had no body, as for HEAD), HTTP status and message."""

    def __init__(self, code: str, status: int, message: str = "") -> None:
        super().__init__(f"{code} ({status}): {message}" if message else f"{code} ({status})")
        self.code = code
        self.status = status
        self.message = message


def strip(tag: str) -> str:
    """An XML tag without its namespace."""
    return tag.rpartition("}")[2]


def parse_error(status: int, body: bytes) -> S3Error | None:
    """The S3Error an answer carries (also a 200 whose body is an <Error>), or None."""
    if status < 300 and b"<Error>" not in body[:512]:
        return None
    root = None
    if body.lstrip().startswith(b"<"):
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            root = None
    if root is not None and strip(root.tag) == "Error":
        fields = {strip(child.tag): child.text or "" for child in root}
        return S3Error(fields.get("Code") or str(status), status, fields.get("Message", ""))
    if status >= 300:
        return S3Error(str(status), status, http.client.responses.get(status, ""))
    return None


class Body:
    """A streamed response body; its connection returns to the pool when read to the end."""

    def __init__(self, response: http.client.HTTPResponse, release: _Release) -> None:
        self._response = response
        self._release = release
        self.headers = response.headers

    def read(self, amt: int) -> bytes:
        data = self._response.read(amt)
        if not data or self._response.isclosed():
            self._finish(reuse=True)
        return data

    def close(self) -> None:
        self._finish(reuse=self._response.isclosed())

    def _finish(self, reuse: bool) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release(reuse)


class _Release:
    def __init__(self, pool: _Pool, conn: http.client.HTTPConnection) -> None:
        self.pool, self.conn = pool, conn

    def __call__(self, reuse: bool) -> None:
        if reuse:
            self.pool.put(self.conn)
        else:
            self.conn.close()


class _Pool:
    """Idle keep-alive connections to one host, at most `size` kept."""

    def __init__(self, scheme: str, netloc: str, size: int) -> None:
        self.scheme, self.netloc, self.size = scheme, netloc, size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def get(self) -> tuple[http.client.HTTPConnection, bool]:
        """A connection, and whether it was used before (and may have been closed by now)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return kind(self.netloc, timeout=CONNECT_TIMEOUT), False

    def put(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Signer:
    """SigV4 for S3: header signatures and presigned query strings."""

    def __init__(self, credentials: CredentialSource, region: str) -> None:
        self.credentials = credentials
        self.region = region
        self._keys = SigningKeys(max_entries=4)
        self.skew = timedelta(0)  # the server's clock minus ours, once S3 said it differs

    def now(self) -> datetime:
        return _clock() + self.skew

    def correct(self, server_date: str | None) -> bool:
        """Adopt the server's clock from a `Date` header; False when there is none to use."""
        if not server_date:
            return False
        try:
            server = email.utils.parsedate_to_datetime(server_date)
        except (TypeError, ValueError):
            return False
        if server.tzinfo is None:
            return False
        self.skew = server - _clock()
        return True

    def _scope(self, creds: Credentials, when: datetime) -> tuple[str, str, bytes]:
        date = when.strftime("%Y%m%d")
        scope = f"{date}/{self.region}/s3/aws4_request"
        key = self._keys.get(creds.secret_access_key, date, self.region, "s3")
        return when.strftime(TIMESTAMP), scope, key

    @staticmethod
    def _signature(key: bytes, stamp: str, scope: str, canonical: str) -> str:
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"{ALGORITHM}\n{stamp}\n{scope}\n{digest}"
        return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()

    def sign(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]],
        headers: dict[str, str],
        payload_hash: str,
        when: datetime | None = None,
    ) -> None:
        """Add x-amz-date, x-amz-content-sha256, the token and Authorization to `headers`
        (lower-case names; `path` as sent, already quoted)."""
        creds = self.credentials()
        stamp, scope, key = self._scope(creds, when or self.now())
        headers["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = payload_hash
        if creds.session_token:
            headers["x-amz-security-token"] = creds.session_token
        signed = sorted(n for n in headers if n not in _UNSIGNED_HEADERS)
        values = {n: [headers[n]] for n in signed}
        canonical = canonical_request(
            method, path, query, signed, values, payload_hash, normalize_path=False
        )
        signature = self._signature(key, stamp, scope, canonical)
        headers["authorization"] = (
            f"{ALGORITHM} Credential={creds.access_key_id}/{scope}, "
            f"SignedHeaders={';'.join(signed)}, Signature={signature}"
        )

    def presign(
        self, host: str, path: str, expires: int, when: datetime | None = None
    ) -> list[tuple[str, str]]:
        """The query of a presigned GET of `path` on `host`, valid `expires` seconds."""
        creds = self.credentials()
        stamp, scope, key = self._scope(creds, when or self.now())
        query = [
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", f"{creds.access_key_id}/{scope}"),
            ("X-Amz-Date", stamp),
            ("X-Amz-Expires", str(expires)),
            ("X-Amz-SignedHeaders", "host"),
        ]
        if creds.session_token:
            query.append(("X-Amz-Security-Token", creds.session_token))
        canonical = canonical_request(
            "GET", path, query, ["host"], {"host": [host]}, UNSIGNED_PAYLOAD, normalize_path=False
        )
        query.append(("X-Amz-Signature", self._signature(key, stamp, scope, canonical)))
        return query


def encode_query(query: Sequence[tuple[str, str]]) -> str:
    """The query as SigV4 canonicalises it (RFC 3986 escapes, sorted), so what is sent is
    exactly what was signed."""
    pairs = sorted((quote(k, safe=_QUERY_SAFE), quote(v, safe=_QUERY_SAFE)) for k, v in query)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _virtual_ok(bucket: str, https: bool) -> bool:
    """Whether the bucket can be a host name label (botocore's DNS-compatible check)."""
    if not 3 <= len(bucket) <= 63 or ".." in bucket or (https and "." in bucket):
        return False
    if bucket[0] in ".-" or bucket[-1] in ".-":
        return False
    if all(part.isdigit() for part in bucket.split(".")):
        return False  # looks like an IP address
    return all(c.islower() or c.isdigit() or c in ".-" for c in bucket)


class Transport:
    """Requests on one bucket: `request` answers (status, headers, body or Body)."""

    def __init__(
        self,
        bucket: str,
        endpoint: str | None,
        region: str,
        path_style: bool | None,
        credentials: CredentialSource,
        connections: int,
        *,
        checksum: bool = True,
    ) -> None:
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        parts = urlsplit(endpoint or f"https://s3.{region}.{suffix}")
        https = parts.scheme == "https"
        if path_style is None:
            path_style = endpoint is not None or not _virtual_ok(bucket, https)
        elif not path_style and not _virtual_ok(bucket, https):
            path_style = True  # as botocore's "auto": such a bucket cannot be a host name
        self.host = parts.netloc if path_style else f"{bucket}.{parts.netloc}"
        self.base = parts.path.rstrip("/") + (f"/{quote(bucket, safe='')}" if path_style else "")
        self.origin = f"{parts.scheme}://{self.host}"
        self.signer = Signer(credentials, region)
        self.pool = _Pool(parts.scheme, self.host, connections)
        self.checksum = checksum

    def path(self, key: str | None) -> str:
        """The request path of an object (or of the bucket when `key` is None)."""
        if key is None:
            return self.base or "/"
        return f"{self.base}/{quote(key, safe='/~')}"

    def presigned_get(self, key: str, expires: int) -> str:
        path = self.path(key)
        return f"{self.origin}{path}?{encode_query(self.signer.presign(self.host, path, expires))}"

    def request(
        self,
        method: str,
        key: str | None = None,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes | Sequence[bytes] = b"",
        stream: bool = False,
    ) -> tuple[int, http.client.HTTPMessage, bytes | Body]:
        """One call, retried on connection errors, 5xx and throttling (not on other 4xx);
        S3Error for an error answer, also one sent with status 200. A body may be a list of
        pieces, sent one after the other (a part is never joined into one more copy)."""
        path = self.path(key)
        target = f"{path}?{encode_query(query)}" if query else path
        pieces = [body] if isinstance(body, bytes) else list(body)
        size = sum(len(piece) for piece in pieces)
        extra: dict[str, str] = {}
        if size >= SIGN_BODY_BELOW:
            payload_hash = UNSIGNED_PAYLOAD
            if self.checksum:
                extra = crc32_headers(pieces)
        else:
            payload_hash = hashlib.sha256(b"".join(pieces)).hexdigest()
        attempt = 0
        corrected = False
        while True:
            attempt += 1
            sent = {k.lower(): v for k, v in (headers or {}).items()}
            sent.update(extra)
            sent["host"] = self.host
            sent["user-agent"] = USER_AGENT
            if size or method in ("PUT", "POST"):
                sent["content-length"] = str(size)
            self.signer.sign(method, path, query, sent, payload_hash)
            conn, reused = self.pool.get()
            try:
                if conn.sock is None:
                    conn.connect()
                    conn.sock.settimeout(READ_TIMEOUT)
                payload = pieces[0] if len(pieces) == 1 else iter(pieces)
                conn.request(method, target, body=payload or None, headers=sent)
                response = conn.getresponse()
                status = response.status
                if stream and status < 300:
                    return status, response.headers, Body(response, _Release(self.pool, conn))
                data = response.read()
            except NETWORK_ERRORS as exc:
                conn.close()
                if attempt >= MAX_ATTEMPTS:
                    raise ConnectionError(f"S3 {method} {path}: {exc}") from exc
                if not reused:
                    _backoff(attempt)
                continue
            if response.will_close:
                conn.close()
            else:
                self.pool.put(conn)
            error = parse_error(status, data)
            if error is None:
                return status, response.headers, data
            if error.code in _SKEW_CODES and not corrected and attempt < MAX_ATTEMPTS:
                corrected = self.signer.correct(response.headers.get("Date"))
                if corrected:
                    continue
            if attempt < MAX_ATTEMPTS and (status in _RETRY_STATUS or error.code in _RETRY_CODES):
                _backoff(attempt)
                continue
            raise error

    def close(self) -> None:
        self.pool.close()


def crc32_headers(pieces: Sequence[bytes]) -> dict[str, str]:
    """S3's flexible-checksum headers for a body: its CRC32, big-endian, in base64."""
    crc = 0
    for piece in pieces:
        crc = zlib.crc32(piece, crc)
    value = base64.b64encode(crc.to_bytes(4, "big")).decode()
    return {"x-amz-checksum-crc32": value, "x-amz-sdk-checksum-algorithm": "CRC32"}


def _clock() -> datetime:
    return datetime.now(UTC)


def _backoff(attempt: int) -> None:
    """Full jitter, as botocore's standard mode: up to 2^attempt seconds, at most 20."""
    time.sleep(random.random() * min(MAX_BACKOFF, 2.0 ** (attempt - 1)))
