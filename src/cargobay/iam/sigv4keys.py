"""The two halves of a SigV4 signature that do not depend on the request's parsing: the
canonical request (as botocore's `SigV4Auth.canonical_request` builds it) and the derived
signing key, remembered per (secret, date, region, service).

The canonical request is built from strings rather than from botocore request objects: the
objects (`AWSRequest`, `HTTPHeaders`, a `SigV4Auth` per request) cost about as much as the rest
of a verification together. Path normalisation and quoting are botocore's own functions, so the
result is byte for byte what botocore signs.

AWS documents the signing key as cacheable: it depends only on the secret, the scope's date,
region and service, and is valid for that day. The cache is keyed by a SHA-256 of the secret
(never the secret itself), so a rotated or changed secret misses, as does a new date; it holds
at most `max_entries` keys, least recently used out first.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlsplit

TERMINATOR = "aws4_request"
_QUERY_SAFE = "-_.~"


def derive_key(secret: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), terminator)."""
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, TERMINATOR):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


# RFC 2104's pads, as translation tables (SHA-256's block is 64 bytes; a signing key is 32).
_INNER = bytes(b ^ 0x36 for b in range(256))
_OUTER = bytes(b ^ 0x5C for b in range(256))


class KeyedMac:
    """HMAC-SHA256 with one key, its padded key blocks hashed once: each `digest` copies the
    two hash states. `hmac.digest` sets the key up afresh in OpenSSL on every call, which
    cost about 12,000 of a verification's instructions more than this (callgrind)."""

    __slots__ = ("_inner", "_outer", "key")

    def __init__(self, key: bytes) -> None:
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        padded = key.ljust(64, b"\0")
        self.key = key
        self._inner = hashlib.sha256(padded.translate(_INNER))
        self._outer = hashlib.sha256(padded.translate(_OUTER))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class SigningKeys:
    """A bounded LRU cache of derived signing keys."""

    def __init__(self, max_entries: int = 1024) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._keys: OrderedDict[tuple[bytes, str, str, str], KeyedMac] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, secret: str, date: str, region: str, service: str) -> bytes:
        """The signing key for this scope: from the cache, or derived and remembered."""
        return self.mac(secret, date, region, service).key

    def mac(self, secret: str, date: str, region: str, service: str) -> KeyedMac:
        """The signing key for this scope as a `KeyedMac`: from the cache, or derived and
        remembered."""
        slot = (hashlib.sha256(secret.encode()).digest(), date, region, service)
        mac = self._keys.get(slot)
        if mac is not None:
            self._keys.move_to_end(slot)
            return mac
        mac = KeyedMac(derive_key(secret, date, region, service))
        self._keys[slot] = mac
        if len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)
        return mac

    def clear(self) -> None:
        self._keys.clear()


def _canonical_path(path: str) -> str:
    # As botocore: the path of the URL it signs, dot segments and repeated slashes removed,
    # then quoted (again) with only '/' and '~' left bare. Imported here, not at the top: the
    # S3 storage client signs with this module and must not load botocore.
    if path == "/":  # every ECR and IAM API call: what botocore's normalising makes of it
        return path
    from botocore.utils import normalize_url_path

    return quote(normalize_url_path(urlsplit("https://verifier.invalid" + path).path), safe="/~")


def _canonical_query(params: Sequence[tuple[str, str]]) -> str:
    if not params:  # every ECR API call
        return ""
    pairs = sorted((quote(k, safe=_QUERY_SAFE), quote(v, safe=_QUERY_SAFE)) for k, v in params)
    return "&".join(f"{k}={v}" for k, v in pairs)


def _canonical_headers(signed: Sequence[str], headers: Mapping[str, list[str]]) -> tuple[str, str]:
    """The canonical header block and the signed-headers line. As botocore: a name listed twice
    contributes its values twice, and a listed header the request lacks is left out of both."""
    if len(set(signed)) == len(signed):  # each name once (every SDK): one line per header
        names = [name for name in sorted(signed) if headers.get(name)]
        lines = [
            f"{name}:{','.join([' '.join(v.split()) for v in headers[name]])}" for name in names
        ]
        return "\n".join(lines) + "\n", ";".join(names)
    values: dict[str, list[str]] = {}
    for name in signed:
        for value in headers.get(name, ()):
            values.setdefault(name, []).append(" ".join(value.split()))
    names = sorted(values)
    block = "\n".join(f"{name}:{','.join(values[name])}" for name in names) + "\n"
    return block, ";".join(names)


def canonical_request(
    method: str,
    path: str,
    params: Sequence[tuple[str, str]],
    signed: Sequence[str],
    headers: Mapping[str, list[str]],
    payload_hash: str,
    *,
    normalize_path: bool = True,
) -> str:
    """The SigV4 canonical request: method, path, query, headers, signed names, payload hash.
    S3 signs its path as sent (`normalize_path=False`: already quoted, dot segments kept)."""
    block, names = _canonical_headers(signed, headers)
    canonical_path = _canonical_path(path) if normalize_path else path
    parts = (method.upper(), canonical_path, _canonical_query(params))
    return "\n".join((*parts, block, names, payload_hash))
