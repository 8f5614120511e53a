"""The `s3://` storage URL: its parameters and their checks (client.py makes the calls).

    s3://BUCKET[/PREFIX]?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true
        &sse=AES256|aws:kms&kms_key_id=KEY&part_size=8388608
        &access_key_id=ID&secret_access_key=SECRET&checksum=crc32|off

Every parameter is optional. Credentials come from the standard AWS chain (environment, shared
config and credentials files, instance roles; see credentials.py) unless `access_key_id` and
`secret_access_key` are given. `sse` adds server-side encryption headers (SSE-S3 `AES256`, or
SSE-KMS `aws:kms` with an optional `kms_key_id`) to every write: pieces, state, copies and the
blobs themselves. `checksum=crc32` (the default) sends each unsigned body's CRC32
(`x-amz-checksum-crc32`), so S3 refuses a part damaged on the way; `off` is for an S3-compatible
store that rejects the header.

Parsing imports no AWS library: the configuration is checked by the `serve` supervisor, which
never opens the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

MIB = 1024 * 1024
MIN_PART = 5 * MIB  # S3's smallest non-last multipart part
MAX_PART = 5 * 1024 * MIB  # S3's largest part and largest CopyObject source
DEFAULT_PART_SIZE = 8 * MIB
CONNECTIONS = 16  # the S3 client's connection pool and the store's threads

_KNOWN = frozenset(
    {
        "endpoint",
        "region",
        "path_style",
        "sse",
        "kms_key_id",
        "part_size",
        "access_key_id",
        "secret_access_key",
        "checksum",
    }
)
_SSE = {"AES256", "aws:kms"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    path_style: bool | None = None
    sse: str | None = None
    kms_key_id: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    checksum: bool = True  # CRC32 of every unsigned body


def _params(query: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in params:
            raise ValueError(f"S3 storage URL: parameter {key!r} is given twice")
        params[key] = value
    if unknown := sorted(set(params) - _KNOWN):
        raise ValueError(f"S3 storage URL: unknown parameter(s) {', '.join(unknown)}")
    return params


def parse_url(url: str) -> S3Config:
    """Parse an `s3://` storage URL; ValueError (never echoing secrets) when it is unusable."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError("an S3 storage URL looks like s3://bucket/prefix?endpoint=...")
    params = _params(parts.query)
    path_style = None
    if "path_style" in params:
        flag = params["path_style"].lower()
        if flag not in _TRUE | _FALSE:
            raise ValueError("S3 storage URL: path_style must be true or false")
        path_style = flag in _TRUE
    sse = params.get("sse") or None
    if sse is not None and sse not in _SSE:
        raise ValueError("S3 storage URL: sse must be AES256 or aws:kms")
    kms_key_id = params.get("kms_key_id") or None
    if kms_key_id and sse != "aws:kms":
        raise ValueError("S3 storage URL: kms_key_id needs sse=aws:kms")
    try:
        part_size = int(params.get("part_size") or DEFAULT_PART_SIZE)
    except ValueError:
        raise ValueError("S3 storage URL: part_size must be a number of bytes") from None
    if not MIN_PART <= part_size <= MAX_PART // 2:
        raise ValueError(f"S3 storage URL: part_size must be {MIN_PART} to {MAX_PART // 2}")
    endpoint = params.get("endpoint") or None
    if endpoint is not None and urlsplit(endpoint).scheme not in ("http", "https"):
        raise ValueError("S3 storage URL: endpoint must be an http:// or https:// URL")
    if bool(params.get("access_key_id")) != bool(params.get("secret_access_key")):
        raise ValueError("S3 storage URL: access_key_id and secret_access_key go together")
    checksum = (params.get("checksum") or "crc32").lower()
    if checksum not in ("crc32", "off"):
        raise ValueError("S3 storage URL: checksum must be crc32 or off")
    return S3Config(
        bucket=parts.netloc,
        prefix=parts.path.strip("/"),
        endpoint=endpoint,
        region=params.get("region") or None,
        path_style=path_style,
        sse=sse,
        kms_key_id=kms_key_id,
        part_size=part_size,
        access_key_id=params.get("access_key_id") or None,
        secret_access_key=params.get("secret_access_key") or None,
        checksum=checksum == "crc32",
    )
