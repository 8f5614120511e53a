"""The KMS API (`X-Amz-Target: TrentService.<Operation>`, SigV4 service `kms`) as one
`JsonService` of the AWS JSON 1.1 dispatcher.

This module only translates: it decodes the request members botocore's `kms` model names
(binary members arrive base64-encoded), calls the one `KmsService` method of the operation and
base64-encodes the binary members of its result. Authorization happens before any handler, in
`authorize`, from the operation's entry in the authorization table
(`iam.permissions.KMS_OPERATIONS`): the key the entry names is loaded and `KmsAuthorizer`
decides with its key policy and the caller's identity policies (`kms:<Operation>`); operations
without a key (CreateKey, ListKeys, ListAliases) are decided on identity policies alone.
Errors are `kms.errors` exceptions, rendered by their `code`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from cargobay.awsjson.door import JsonCall, JsonService, Operation
from cargobay.iam import permissions
from cargobay.kms import grant_door
from cargobay.kms.errors import KmsError, ValidationException
from cargobay.kms.model import KeyRecord
from cargobay.kms.service import KmsService


def _kms(call: JsonCall) -> KmsService:
    return call.services.kms


def _text(payload: dict[str, Any], name: str, *, required: bool = True, empty: bool = False) -> Any:
    value = payload.get(name)
    if value is None:
        if required:
            raise ValidationException(f"1 validation error detected: Value null at '{name}'")
        return None
    if not isinstance(value, str) or not (value or empty):
        raise ValidationException(f"{name} must be a non-empty string")
    return value


def _flag(payload: dict[str, Any], name: str) -> bool:
    value = payload.get(name, False)
    if not isinstance(value, bool):
        raise ValidationException(f"{name} must be a boolean")
    return value


def _tags(payload: dict[str, Any]) -> list[dict[str, str]]:
    tags = payload.get("Tags")
    if not isinstance(tags, list) or not all(isinstance(t, dict) for t in tags):
        raise ValidationException("Tags must be a list of TagKey/TagValue pairs")
    return tags


def _int(payload: dict[str, Any], name: str) -> int | None:
    value = payload.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValidationException(f"{name} must be an integer")
    return value


def _bytes(payload: dict[str, Any], name: str) -> bytes:
    value = _text(payload, name)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationException(f"{name} is not valid base64") from None


def _context(payload: dict[str, Any], name: str = "EncryptionContext") -> dict[str, str] | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValidationException(f"{name} must be a map of strings")
    return value


def _encode(result: dict[str, Any]) -> dict[str, Any]:
    return {
        k: base64.b64encode(v).decode() if isinstance(v, bytes) else v for k, v in result.items()
    }


# -- authorization ----------------------------------------------------------------------------


async def _key(call: JsonCall, payload: dict[str, Any], resource: str) -> KeyRecord:
    """The key an operation's table entry names."""
    kms = _kms(call)
    if resource == permissions.KMS_CIPHERTEXT_KEY and payload.get("KeyId") is None:
        return await kms.key_for_ciphertext(_bytes(payload, "CiphertextBlob"))
    member = {
        permissions.KMS_TARGET_KEY: "TargetKeyId",
        permissions.KMS_ALIAS_KEY: "AliasName",
    }.get(resource, "KeyId")
    return await kms.key(call.account_id, _text(payload, member))


class DryRunOperationException(KmsError):
    """A `DryRun` call that would have succeeded (authorized; the key found)."""


async def authorize(call: JsonCall, payload: dict[str, Any]) -> None:
    """The operation's entry in `iam.permissions.KMS_OPERATIONS`, decided by KmsAuthorizer
    with the named key's policy as the resource policy. A `DryRun` call stops here."""
    await _authorize(call, payload)
    if _flag(payload, "DryRun"):
        raise DryRunOperationException("The request would have succeeded, but DryRun was set.")


async def _authorize(call: JsonCall, payload: dict[str, Any]) -> None:
    permission = permissions.KMS_OPERATIONS[call.operation]
    authorizer = call.services.kms_authorizer
    context = call.context()
    if permission.resource == permissions.KMS_GRANT:
        await grant_door.authorize_retire(call, payload)
        return
    if permission.resource == permissions.KMS_ACCOUNT:
        for action in permission.actions:
            await authorizer.require_identity(call.principal, action, call.region, context=context)
        return
    if permission.resource == permissions.KMS_REENCRYPT_KEYS:
        source = await _kms(call).key_for_ciphertext(_bytes(payload, "CiphertextBlob"))
        destination = await _kms(call).key(call.account_id, _text(payload, "DestinationKeyId"))
        await authorizer.require(
            call.principal,
            "kms:ReEncryptFrom",
            source,
            context=context,
            encryption_context=_context(payload, "SourceEncryptionContext"),
        )
        await authorizer.require(
            call.principal,
            "kms:ReEncryptTo",
            destination,
            context=context,
            encryption_context=_context(payload, "DestinationEncryptionContext"),
        )
        return
    key = await _key(call, payload, permission.resource)
    for action in permission.actions:
        await authorizer.require(
            call.principal,
            action,
            key,
            context=context,
            encryption_context=_context(payload),
            grant_check=grant_door.create_grant_check(payload)
            if call.operation == "CreateGrant"
            else None,
        )


# -- handlers ----------------------------------------------------------------------------------

Handler = Callable[[JsonCall, dict[str, Any]], Awaitable[dict[str, Any]]]


async def create_key(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).create_key(
        call.account_id,
        description=_text(p, "Description", required=False, empty=True) or "",
        key_usage=_text(p, "KeyUsage", required=False),
        key_spec=_text(p, "KeySpec", required=False),
        customer_master_key_spec=_text(p, "CustomerMasterKeySpec", required=False),
        policy=_text(p, "Policy", required=False),
        tags=_tags(p) if "Tags" in p else None,
        origin=_text(p, "Origin", required=False) or "AWS_KMS",
        multi_region=_flag(p, "MultiRegion"),
        bypass_policy_lockout_safety_check=_flag(p, "BypassPolicyLockoutSafetyCheck"),
        caller_arn=call.principal.arn,
    )


def _by_key(method: str, *extra: tuple[str, str, Callable[..., Any]]) -> Handler:
    """A handler calling `KmsService.<method>(account, KeyId, **members)`."""

    async def handler(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
        kwargs = {arg: read(p, member) for member, arg, read in extra if p.get(member) is not None}
        result = await getattr(_kms(call), method)(call.account_id, _text(p, "KeyId"), **kwargs)
        return _encode(result)

    return handler


async def list_keys(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).list_keys(
        call.account_id, limit=_int(p, "Limit"), marker=_text(p, "Marker", required=False)
    )


async def create_alias(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).create_alias(
        call.account_id, _text(p, "AliasName"), _text(p, "TargetKeyId")
    )


async def update_alias(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).update_alias(
        call.account_id, _text(p, "AliasName"), _text(p, "TargetKeyId")
    )


async def delete_alias(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).delete_alias(call.account_id, _text(p, "AliasName"))


async def list_aliases(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).list_aliases(
        call.account_id,
        key_id=_text(p, "KeyId", required=False),
        limit=_int(p, "Limit"),
        marker=_text(p, "Marker", required=False),
    )


async def encrypt(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    result = await _kms(call).encrypt(
        call.account_id,
        _text(p, "KeyId"),
        _bytes(p, "Plaintext"),
        encryption_context=_context(p),
        encryption_algorithm=_text(p, "EncryptionAlgorithm", required=False),
    )
    return _encode(result)


async def decrypt(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    result = await _kms(call).decrypt(
        call.account_id,
        _bytes(p, "CiphertextBlob"),
        encryption_context=_context(p),
        key_id=_text(p, "KeyId", required=False),
        encryption_algorithm=_text(p, "EncryptionAlgorithm", required=False),
    )
    return _encode(result)


async def re_encrypt(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    result = await _kms(call).re_encrypt(
        call.account_id,
        _bytes(p, "CiphertextBlob"),
        _text(p, "DestinationKeyId"),
        source_encryption_context=_context(p, "SourceEncryptionContext"),
        destination_encryption_context=_context(p, "DestinationEncryptionContext"),
        source_key_id=_text(p, "SourceKeyId", required=False),
        source_encryption_algorithm=_text(p, "SourceEncryptionAlgorithm", required=False),
        destination_encryption_algorithm=_text(p, "DestinationEncryptionAlgorithm", required=False),
    )
    return _encode(result)


async def sign(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    result = await _kms(call).sign(
        call.account_id,
        _text(p, "KeyId"),
        _bytes(p, "Message"),
        _text(p, "SigningAlgorithm"),
        message_type=_text(p, "MessageType", required=False) or "RAW",
    )
    return _encode(result)


async def verify(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    result = await _kms(call).verify(
        call.account_id,
        _text(p, "KeyId"),
        _bytes(p, "Message"),
        _bytes(p, "Signature"),
        _text(p, "SigningAlgorithm"),
        message_type=_text(p, "MessageType", required=False) or "RAW",
    )
    return _encode(result)


async def put_key_policy(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).put_key_policy(
        call.account_id,
        _text(p, "KeyId"),
        _text(p, "Policy"),
        policy_name=_text(p, "PolicyName", required=False),
        bypass_policy_lockout_safety_check=_flag(p, "BypassPolicyLockoutSafetyCheck"),
        caller_arn=call.principal.arn,
    )


async def tag_resource(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    return await _kms(call).tag_resource(call.account_id, _text(p, "KeyId"), _tags(p))


async def untag_resource(call: JsonCall, p: dict[str, Any]) -> dict[str, Any]:
    keys = p.get("TagKeys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValidationException("TagKeys must be a list of strings")
    return await _kms(call).untag_resource(call.account_id, _text(p, "KeyId"), keys)


def _data_key(method: str) -> Handler:
    return _by_key(
        method,
        ("KeySpec", "key_spec", _text),
        ("NumberOfBytes", "number_of_bytes", _int),
        ("EncryptionContext", "encryption_context", _context),
    )


HANDLERS: dict[str, Handler] = {
    "CreateKey": create_key,
    "DescribeKey": _by_key("describe_key"),
    "ListKeys": list_keys,
    "EnableKey": _by_key("enable_key"),
    "DisableKey": _by_key("disable_key"),
    "EnableKeyRotation": _by_key(
        "enable_key_rotation", ("RotationPeriodInDays", "rotation_period_days", _int)
    ),
    "DisableKeyRotation": _by_key("disable_key_rotation"),
    "GetKeyRotationStatus": _by_key("get_key_rotation_status"),
    "RotateKeyOnDemand": _by_key("rotate_key_on_demand"),
    "ScheduleKeyDeletion": _by_key(
        "schedule_key_deletion", ("PendingWindowInDays", "pending_window_days", _int)
    ),
    "CancelKeyDeletion": _by_key("cancel_key_deletion"),
    "CreateAlias": create_alias,
    "UpdateAlias": update_alias,
    "DeleteAlias": delete_alias,
    "ListAliases": list_aliases,
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "ReEncrypt": re_encrypt,
    "GenerateDataKey": _data_key("generate_data_key"),
    "GenerateDataKeyWithoutPlaintext": _data_key("generate_data_key_without_plaintext"),
    "GetKeyPolicy": _by_key("get_key_policy", ("PolicyName", "policy_name", _text)),
    "PutKeyPolicy": put_key_policy,
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListResourceTags": _by_key(
        "list_resource_tags", ("Limit", "limit", _int), ("Marker", "marker", _text)
    ),
    "Sign": sign,
    "Verify": verify,
    "GetPublicKey": _by_key("get_public_key"),
    **grant_door.HANDLERS,
}


def map_error(exc: Exception) -> tuple[str, int] | None:
    if isinstance(exc, KmsError):
        return exc.code, 400 if exc.client_fault else 500
    return None


SERVICE = JsonService(
    target_prefix="TrentService.",
    signing_name="kms",
    operations={
        name: Operation(handler, permissions.KMS_OPERATIONS[name].actions[0])
        for name, handler in HANDLERS.items()
    },
    authorize=authorize,
    map_error=map_error,
    shapes="kms",
    check=grant_door.validate,
)
