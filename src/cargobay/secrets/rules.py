"""Input rules of Secrets Manager that need no database: names, ARNs, secret ids, values,
tags, version ids and stages, as botocore's model and AWS's documentation state them."""

from __future__ import annotations

import base64
import re
import secrets as random
import string
from dataclasses import dataclass
from typing import Any

from cargobay.secrets.errors import InvalidParameterException, InvalidRequestException

CURRENT, PREVIOUS, PENDING = "AWSCURRENT", "AWSPREVIOUS", "AWSPENDING"
_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):([0-9]{12}):secret:(.+)")
_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}")
_TAG_CHARS = re.compile(r"[\w\s.:/=+\-@]*", re.UNICODE)
MAX_VALUE_BYTES = 65536
MAX_TAGS = 50
MAX_STAGES_PER_VERSION = 20
_SUFFIX_ALPHABET = string.ascii_letters + string.digits


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidParameterException(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of "
            "the following: -/_+=.@!"
        )
    return name


def new_arn(region: str, account_id: str, name: str) -> str:
    suffix = "".join(random.choice(_SUFFIX_ALPHABET) for _ in range(6))
    return f"arn:aws:secretsmanager:{region}:{account_id}:secret:{name}-{suffix}"


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A SecretId: a name, a full ARN (`arn`), or a partial ARN (`name` inside an ARN
    without the 6-character suffix AWS appends)."""

    name: str | None = None
    arn: str | None = None
    region: str | None = None
    account_id: str | None = None


def parse_secret_id(secret_id: Any) -> SecretRef:
    if not isinstance(secret_id, str) or not 1 <= len(secret_id) <= 2048:
        raise InvalidParameterException("SecretId must be 1 to 2048 characters long.")
    match = _ARN.fullmatch(secret_id)
    if match is None:
        if secret_id.startswith("arn:"):
            raise InvalidParameterException(f"Invalid ARN: {secret_id}")
        return SecretRef(name=secret_id)
    region, account_id, rest = match.groups()
    # Either ARN form: `<name>-AbCdEf` (full) or `<name>` (partial). Which one it is is only
    # known against the stored secrets, so the caller tries the full ARN, then the name.
    return SecretRef(name=rest, arn=secret_id, region=region, account_id=account_id)


def check_value(secret_string: Any, secret_binary: Any, *, required: bool) -> tuple[str, str]:
    """(kind, text to seal): SecretString as is, SecretBinary as base64."""
    if secret_string is not None and secret_binary is not None:
        raise InvalidParameterException(
            "You can't specify both a binary secret value and a string secret value in the "
            "same secret."
        )
    if secret_string is not None:
        if not isinstance(secret_string, str) or not secret_string:
            raise InvalidParameterException("SecretString must be a non-empty string.")
        if len(secret_string.encode()) > MAX_VALUE_BYTES:
            raise InvalidParameterException("SecretString is longer than 65536 bytes.")
        return "string", secret_string
    if secret_binary is not None:
        if not isinstance(secret_binary, bytes | bytearray) or not secret_binary:
            raise InvalidParameterException("SecretBinary must be non-empty bytes.")
        if len(secret_binary) > MAX_VALUE_BYTES:
            raise InvalidParameterException("SecretBinary is longer than 65536 bytes.")
        return "binary", base64.b64encode(bytes(secret_binary)).decode()
    if required:
        raise InvalidRequestException("You must provide either SecretString or SecretBinary.")
    return "", ""


def check_version_id(value: Any, what: str = "ClientRequestToken") -> str:
    if not isinstance(value, str) or not 32 <= len(value) <= 64:
        raise InvalidParameterException(f"{what} must be 32 to 64 characters long.")
    return value


def new_version_id() -> str:
    """A UUID-shaped version id, as AWS and its SDKs generate them."""
    import uuid

    return str(uuid.uuid4())


def check_stages(stages: Any) -> list[str]:
    if (
        not isinstance(stages, list)
        or not 1 <= len(stages) <= MAX_STAGES_PER_VERSION
        or not all(isinstance(s, str) and 1 <= len(s) <= 256 for s in stages)
    ):
        raise InvalidParameterException("VersionStages must list 1 to 20 labels of 1-256 chars.")
    return list(dict.fromkeys(stages))


def check_description(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidParameterException("Description must be at most 2048 characters.")
    return value


def check_kms_key_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidParameterException("KmsKeyId must be at most 2048 characters.")
    return value or None


def check_tags(tags: Any) -> dict[str, str]:
    if not isinstance(tags, list):
        raise InvalidParameterException("Tags must be a list of Key/Value pairs.")
    result: dict[str, str] = {}
    for tag in tags:
        if not isinstance(tag, dict):
            raise InvalidParameterException("Each tag must have a Key and a Value.")
        key, value = tag.get("Key"), tag.get("Value", "")
        if not isinstance(key, str) or not 1 <= len(key) <= 128 or not _TAG_CHARS.fullmatch(key):
            raise InvalidParameterException(f"Invalid tag key: {key!r}")
        if key.lower().startswith("aws:"):
            raise InvalidParameterException("Tag keys starting with aws: are reserved.")
        if not isinstance(value, str) or len(value) > 256 or not _TAG_CHARS.fullmatch(value):
            raise InvalidParameterException(f"Invalid tag value for key {key!r}")
        result[key] = value
    return result


def check_tag_keys(keys: Any) -> list[str]:
    if not isinstance(keys, list) or not all(
        isinstance(k, str) and 1 <= len(k) <= 128 for k in keys
    ):
        raise InvalidParameterException("TagKeys must be a list of tag keys.")
    if any(k.lower().startswith("aws:") for k in keys):
        raise InvalidParameterException("Tag keys starting with aws: are reserved.")
    return keys


def check_recovery(window: Any, force: Any) -> int | None:
    """Days until deletion, or None for ForceDeleteWithoutRecovery."""
    if force is not None and not isinstance(force, bool):
        raise InvalidParameterException("ForceDeleteWithoutRecovery must be a boolean.")
    if force and window is not None:
        raise InvalidParameterException(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
        )
    if force:
        return None
    if window is None:
        return 30
    if isinstance(window, bool) or not isinstance(window, int) or not 7 <= window <= 30:
        raise InvalidParameterException(
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
        )
    return window


def arn_without_suffix_matches(arn: str, partial: str) -> bool:
    """True when `partial` is `arn` minus its `-XXXXXX` suffix."""
    return bool(_SUFFIX.fullmatch(arn[len(partial) :])) and arn.startswith(partial)
