"""What an audit record must never hold: secrets are replaced by CloudTrail's marker, and policy
bodies (and manifests) by their SHA-256, which still shows whether two calls set the same
document. Keys match case-insensitively, at any depth, in requests and responses alike."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"

# Every service: secrets and documents whatever the API calls them.
_COMMON_HIDE = {
    "password",
    "oldpassword",
    "newpassword",
    "secretaccesskey",
    "sessiontoken",
    "authorizationtoken",
    "plaintext",
    "secretstring",
    "secretbinary",
    "randompassword",
    "privatekey",
    "privatekeyplaintext",
    "clientsecret",
}
_COMMON_HASH = {"policytext", "policydocument", "lifecyclepolicytext"}

# Per service (the first label of eventSource): what else is sensitive there.
SENSITIVE: dict[str, dict[str, set[str]]] = {
    "ecr": {"hide": set(), "hash": {"imagemanifest", "registrypolicytext"}},
    "iam": {"hide": {"secretaccesskey"}, "hash": {"assumerolepolicydocument"}},
    "kms": {"hide": {"plaintext", "publickey"}, "hash": {"policy", "ciphertextblob"}},
    "secretsmanager": {"hide": {"secretstring", "secretbinary"}, "hash": {"resourcepolicy"}},
    "sts": {"hide": {"secretaccesskey", "sessiontoken"}, "hash": {"policy"}},
}


def digest(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=_text)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _text(value: Any) -> str:
    """Bytes inside a hashed document, as the walk takes bytes (it hashed a value holding
    bytes by failing the record's batch before)."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def service_of(event_source: str) -> str:
    """`ecr.amazonaws.com` -> `ecr`."""
    return event_source.split(".", 1)[0].lower()


def _keys(service: str) -> tuple[frozenset[str], frozenset[str]]:
    """The keys hidden and hashed in a service's records."""
    extra = SENSITIVE.get(service, {})
    hide = frozenset(_COMMON_HIDE | extra.get("hide", set()))
    return hide, frozenset(_COMMON_HASH | extra.get("hash", set()))


# Built once per service (the audit writer redacts every record of every call).
_KEYS = {service: _keys(service) for service in SENSITIVE}
_DEFAULT_KEYS = _keys("")
# The same keys, for a search of a value's JSON text (`encode_redacted`).
_NAMES = {
    service: tuple(sorted(hide | hashed))
    for service, (hide, hashed) in {**_KEYS, "": _DEFAULT_KEYS}.items()
}


def redact(service: str, value: Any) -> Any:
    """A copy of `value` with the service's sensitive keys hidden or hashed."""
    if value is None:
        return None
    hide, hashed = _KEYS.get(service, _DEFAULT_KEYS)
    return _walk(value, hide, hashed)


def encode_redacted(service: str, value: Any, encode: Callable[[Any], str]) -> str:
    """`encode(redact(service, value))` ("null" for None), the same text, without the walk
    when there is nothing to redact (most calls: the walk was a third of a record's encoding):
    `value` is encoded as it is, and if no key the service redacts appears in that text, no
    key of `value` is one of them. A key is ASCII in the text or escaped (a backslash-u, which
    sends every value with one through the walk: a non-ASCII key may lower to an ASCII name),
    and bytes (which the walk hashes) do not encode at all."""
    if value is None:
        return "null"
    try:
        text = encode(value)
    except TypeError:
        return encode(redact(service, value))
    if "\\u" in text:
        return encode(redact(service, value))
    lowered = text.lower()
    for name in _NAMES.get(service) or _NAMES[""]:  # a loop: cheaper than a regex here
        if name in lowered:
            return encode(redact(service, value))
    return text


def _walk(value: Any, hide: frozenset[str], hashed: frozenset[str]) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = str(key).lower()
            if name in hide and item is not None:
                out[key] = HIDDEN
            elif name in hashed and item is not None:
                out[key] = digest(item)
            else:
                out[key] = _walk(item, hide, hashed)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, hide, hashed) for item in value]
    if isinstance(value, bytes):
        return digest(value.decode("latin-1"))
    return value
