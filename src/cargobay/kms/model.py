"""What a KMS key is: its stored record, its ARN, and the shapes botocore's `kms` model gives
KeyMetadata and AliasListEntry. Pure functions, no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cargobay.kms.errors import InvalidAliasNameException, NotFoundException

SYMMETRIC = "SYMMETRIC_DEFAULT"
ECC_P256 = "ECC_NIST_P256"
ECC_P384 = "ECC_NIST_P384"
ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
SIGN_VERIFY = "SIGN_VERIFY"
ENABLED, DISABLED, PENDING_DELETION = "Enabled", "Disabled", "PendingDeletion"
CUSTOMER, AWS = "CUSTOMER", "AWS"

# The key specs this KMS creates, with the usages and algorithms AWS allows for each.
KEY_SPECS: dict[str, dict[str, Any]] = {
    SYMMETRIC: {"usages": (ENCRYPT_DECRYPT,), "encryption": [SYMMETRIC], "signing": None},
    ECC_P256: {"usages": (SIGN_VERIFY,), "encryption": None, "signing": ["ECDSA_SHA_256"]},
    ECC_P384: {"usages": (SIGN_VERIFY,), "encryption": None, "signing": ["ECDSA_SHA_384"]},
}
ALIAS_PREFIX = "alias/"
RESERVED_ALIAS_PREFIX = "alias/aws/"
_ALIAS_RE = re.compile(r"^alias/[a-zA-Z0-9/_-]+$")
_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):(key|alias)/(.+)$")


def key_arn(region: str, account_id: str, key_id: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:key/{key_id}"


def alias_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:kms:{region}:{account_id}:{name}"


def default_key_policy(account_id: str) -> str:
    """The policy CreateKey attaches when none is given: the account (root) may do everything,
    which delegates access to the account's IAM policies, as AWS's default does."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        indent=2,
    )


def managed_key_policy(account_id: str, region: str, service: str) -> str:
    """An AWS managed key's policy: principals of the account may use the key only through
    the service (`kms:ViaService`), and may read its metadata directly."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": f"auto-{service}-1",
            "Statement": [
                {
                    "Sid": f"Allow access through {service} for principals in the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": "*"},
                    "Action": [
                        "kms:Encrypt",
                        "kms:Decrypt",
                        "kms:ReEncrypt*",
                        "kms:GenerateDataKey*",
                        "kms:DescribeKey",
                    ],
                    "Resource": "*",
                    "Condition": {
                        "StringEquals": {
                            "kms:CallerAccount": account_id,
                            "kms:ViaService": f"{service}.{region}.amazonaws.com",
                        }
                    },
                },
                {
                    "Sid": "Allow direct access to key metadata to the account",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": ["kms:Describe*", "kms:Get*", "kms:List*"],
                    "Resource": "*",
                },
            ],
        },
        indent=2,
    )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key as stored (its material aside)."""

    id: str
    account_id: str
    region: str
    description: str
    key_usage: str
    key_spec: str
    key_manager: str
    state: str
    created_at: float
    deletion_date: float | None
    pending_window_days: int | None
    rotation_enabled: bool
    rotation_period_days: int | None
    next_rotation_at: float | None
    on_demand_rotations: int
    on_demand_rotation_at: float | None
    policy_text: str
    tags: str
    current_version: int

    @classmethod
    def from_row(cls, row: Any) -> KeyRecord:
        return cls(**{name: getattr(row, name) for name in cls.__slots__})

    @property
    def arn(self) -> str:
        return key_arn(self.region, self.account_id, self.id)

    @property
    def tag_map(self) -> dict[str, str]:
        return json.loads(self.tags or "{}")


def key_metadata(key: KeyRecord, current_material_id: str | None = None) -> dict[str, Any]:
    """DescribeKey's KeyMetadata (member names and value sets of botocore's model;
    timestamps as epoch seconds, which a JSON 1.1 door sends as they are)."""
    spec = KEY_SPECS[key.key_spec]
    meta: dict[str, Any] = {
        "AWSAccountId": key.account_id,
        "KeyId": key.id,
        "Arn": key.arn,
        "CreationDate": key.created_at,
        "Enabled": key.state == ENABLED,
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.state,
        "Origin": "AWS_KMS",
        "KeyManager": key.key_manager,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "MultiRegion": False,
    }
    if spec["encryption"]:
        meta["EncryptionAlgorithms"] = list(spec["encryption"])
    if spec["signing"]:
        meta["SigningAlgorithms"] = list(spec["signing"])
    if key.state == PENDING_DELETION:
        meta["DeletionDate"] = key.deletion_date
        meta["PendingDeletionWindowInDays"] = key.pending_window_days
    if current_material_id and key.key_spec == SYMMETRIC:
        meta["CurrentKeyMaterialId"] = current_material_id
    return meta


def alias_entry(
    region: str, account_id: str, name: str, key_id: str | None, created: float, updated: float
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "AliasName": name,
        "AliasArn": alias_arn(region, account_id, name),
        "CreationDate": created,
        "LastUpdatedDate": updated,
    }
    if key_id is not None:
        entry["TargetKeyId"] = key_id
    return entry


def check_alias_name(name: str, *, creating: bool) -> None:
    """AWS's alias rules: `alias/` then letters, digits, `/_-`, at most 256 characters; the
    `alias/aws/` prefix belongs to AWS managed keys and cannot be created or moved."""
    if not (1 <= len(name) <= 256) or not _ALIAS_RE.match(name):
        raise InvalidAliasNameException(
            f"Alias name {name!r} must begin with 'alias/' and contain only alphanumeric "
            "characters, forward slashes (/), underscores (_), and dashes (-)."
        )
    if creating and name.startswith(RESERVED_ALIAS_PREFIX):
        raise InvalidAliasNameException(
            f"Alias name {name!r} must not begin with '{RESERVED_ALIAS_PREFIX}': "
            "that prefix is reserved for AWS managed keys."
        )


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A parsed KeyId parameter: a key id, or an alias name, and the account it is in."""

    account_id: str
    region: str
    key_id: str | None = None
    alias: str | None = None


def parse_key_ref(value: str, account_id: str, region: str, *, allow_alias: bool) -> KeyRef:
    """Key id, key ARN, alias name or alias ARN (the last two only where AWS takes them)."""
    match = _ARN_RE.match(value)
    if match:
        arn_region, arn_account, kind, rest = match.groups()
        if kind == "key" and _UUID_RE.match(rest):
            return KeyRef(arn_account, arn_region, key_id=rest)
        if kind == "alias" and allow_alias:
            name = ALIAS_PREFIX + rest
            check_alias_name(name, creating=False)
            return KeyRef(arn_account, arn_region, alias=name)
        raise NotFoundException(f"Invalid keyId '{value}'")
    if _UUID_RE.match(value):
        return KeyRef(account_id, region, key_id=value)
    if value.startswith(ALIAS_PREFIX) and allow_alias:
        check_alias_name(value, creating=False)
        return KeyRef(account_id, region, alias=value)
    raise NotFoundException(f"Invalid keyId '{value}'")
