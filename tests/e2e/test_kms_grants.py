"""KMS grants (issue 13) with boto3 against a real `cargobay serve`: a grantee without any
key-policy or IAM permission uses the key for exactly the granted operations (constraints
applied), ListGrants/ListRetirableGrants answer the model's shapes and paginate, RetireGrant
is decided by the grant, RevokeGrant ends the access at once, a grant's CreateGrant permission
only creates narrower grants, and bad input gets the model's errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from e2e.ecrhelp import ACCOUNT, make_user, unique
from e2e.kmshelp import kms_client
from kmshelp import assert_output_shape
from server import Server

pytestmark = pytest.mark.backend

NO_KMS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
}


def _user(registry: Server, tmp_path: Path, prefix: str) -> tuple[Any, str]:
    """A user whose policies allow no KMS action; its KMS client and ARN."""
    name = unique(prefix)
    creds = make_user(registry, name, NO_KMS, tmp=tmp_path)
    return kms_client(registry, creds), f"arn:aws:iam::{ACCOUNT}:user/{name}"


def _code(call: Callable[[], Any]) -> str:
    with pytest.raises(ClientError) as info:
        call()
    return str(info.value.response["Error"]["Code"])


def _shape(operation: str, response: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    assert_output_shape(operation, body)
    return body


def test_a_grant_allows_exactly_its_operations_until_retired_or_revoked(
    registry: Server, tmp_path: Path
) -> None:
    admin = kms_client(registry)
    key = admin.create_key(Description="granted")["KeyMetadata"]
    key_arn = key["Arn"]
    user, user_arn = _user(registry, tmp_path, "grantee")
    retirer, root = _user(registry, tmp_path, "retirer")  # the grant's retiring principal
    assert _code(lambda: user.encrypt(KeyId=key_arn, Plaintext=b"x")) == "AccessDeniedException"

    created = _shape(
        "CreateGrant",
        admin.create_grant(
            KeyId=key["KeyId"],
            GranteePrincipal=user_arn,
            RetiringPrincipal=root,
            Operations=["Encrypt", "Decrypt", "GenerateDataKey"],
            Name="app-grant",
        ),
    )
    token, grant_id = created["GrantToken"], created["GrantId"]
    # The same named grant again is the same grant (AWS's idempotence).
    again = admin.create_grant(
        KeyId=key["KeyId"],
        GranteePrincipal=user_arn,
        RetiringPrincipal=root,
        Operations=["Decrypt", "Encrypt", "GenerateDataKey"],
        Name="app-grant",
    )
    assert again["GrantId"] == grant_id

    # The grantee may now use the key for the granted operations, and nothing else.
    sealed = user.encrypt(KeyId=key_arn, Plaintext=b"granted bytes", GrantTokens=[token])
    opened = user.decrypt(CiphertextBlob=sealed["CiphertextBlob"], GrantTokens=[token])
    assert opened["Plaintext"] == b"granted bytes"
    data_key = user.generate_data_key(KeyId=key_arn, KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    assert _code(lambda: user.describe_key(KeyId=key_arn)) == "AccessDeniedException"
    assert _code(lambda: user.disable_key(KeyId=key_arn)) == "AccessDeniedException"
    assert _code(lambda: user.list_grants(KeyId=key_arn)) == "AccessDeniedException"

    listed = _shape("ListGrants", admin.list_grants(KeyId=key["KeyId"]))
    assert listed["Truncated"] is False
    (entry,) = listed["Grants"]
    assert entry["GrantId"] == grant_id and entry["KeyId"] == key_arn
    assert entry["GranteePrincipal"] == user_arn and entry["RetiringPrincipal"] == root
    assert entry["IssuingAccount"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert entry["Name"] == "app-grant"
    assert sorted(entry["Operations"]) == ["Decrypt", "Encrypt", "GenerateDataKey"]
    retirable = _shape("ListRetirableGrants", admin.list_retirable_grants(RetiringPrincipal=root))
    assert grant_id in {g["GrantId"] for g in retirable["Grants"]}

    # RetireGrant is the grant's to decide: not the grantee's (no RetireGrant in it), but the
    # retiring principal's. Then the grantee is refused again, at once.
    assert _code(lambda: user.retire_grant(GrantToken=token)) == "AccessDeniedException"
    _shape("RetireGrant", retirer.retire_grant(GrantToken=token))
    assert _code(lambda: user.encrypt(KeyId=key_arn, Plaintext=b"x")) == "AccessDeniedException"
    assert admin.list_grants(KeyId=key_arn)["Grants"] == []
    assert _code(lambda: admin.retire_grant(GrantToken=token)) == "NotFoundException"
    # The issuing account (its administrator) may retire any of its grants, by key and id.
    other = admin.create_grant(KeyId=key_arn, GranteePrincipal=user_arn, Operations=["Encrypt"])
    admin.retire_grant(KeyId=key_arn, GrantId=other["GrantId"])

    # RevokeGrant (the key policy's to allow) ends a grant the same way.
    revoked = admin.create_grant(KeyId=key_arn, GranteePrincipal=user_arn, Operations=["Encrypt"])
    user.encrypt(KeyId=key_arn, Plaintext=b"x")
    admin.revoke_grant(KeyId=key_arn, GrantId=revoked["GrantId"])
    assert _code(lambda: user.encrypt(KeyId=key_arn, Plaintext=b"x")) == "AccessDeniedException"
    assert (
        _code(lambda: admin.revoke_grant(KeyId=key_arn, GrantId=revoked["GrantId"]))
        == "NotFoundException"
    )


def test_grant_constraints_pagination_and_grants_made_through_grants(
    registry: Server, tmp_path: Path
) -> None:
    admin = kms_client(registry)
    key_arn = admin.create_key(Description="constrained")["KeyMetadata"]["Arn"]
    user, user_arn = _user(registry, tmp_path, "constrained")
    delegate, delegate_arn = _user(registry, tmp_path, "delegate")

    admin.create_grant(
        KeyId=key_arn,
        GranteePrincipal=user_arn,
        Operations=["Encrypt", "DescribeKey"],
        Constraints={"EncryptionContextSubset": {"app": "shop"}},
    )
    # Keys compared without case, values exactly; extra pairs allowed by a subset.
    user.encrypt(KeyId=key_arn, Plaintext=b"x", EncryptionContext={"App": "shop", "x": "y"})
    for context in ({"app": "Shop"}, {}, {"other": "shop"}):
        assert (
            _code(
                lambda c=context: user.encrypt(KeyId=key_arn, Plaintext=b"x", EncryptionContext=c)
            )
            == "AccessDeniedException"
        )
    # DescribeKey has no encryption context: the constraint does not apply to it.
    assert user.describe_key(KeyId=key_arn)["KeyMetadata"]["Arn"] == key_arn

    # A grant with CreateGrant lets its grantee make narrower grants only.
    admin.create_grant(
        KeyId=key_arn, GranteePrincipal=delegate_arn, Operations=["CreateGrant", "Encrypt"]
    )
    delegate.create_grant(KeyId=key_arn, GranteePrincipal=user_arn, Operations=["Encrypt"])
    wider = lambda: delegate.create_grant(  # noqa: E731
        KeyId=key_arn, GranteePrincipal=user_arn, Operations=["Decrypt"]
    )
    assert _code(wider) == "AccessDeniedException"

    # Pagination: three grants on the key, one per page.
    seen, marker = [], None
    while True:
        page = admin.list_grants(KeyId=key_arn, Limit=1, **({"Marker": marker} if marker else {}))
        _shape("ListGrants", page)
        seen += [g["GrantId"] for g in page["Grants"]]
        if not page["Truncated"]:
            break
        marker = page["NextMarker"]
    assert len(seen) == len(set(seen)) == 3
    only = admin.list_grants(KeyId=key_arn, GranteePrincipal=delegate_arn)["Grants"]
    assert [g["GranteePrincipal"] for g in only] == [delegate_arn]


def test_grant_input_errors(registry: Server, tmp_path: Path) -> None:
    admin = kms_client(registry)
    key_arn = admin.create_key(Description="errors")["KeyMetadata"]["Arn"]
    _, user_arn = _user(registry, tmp_path, "errors")

    def create(**extra: Any) -> Callable[[], Any]:
        args = {"KeyId": key_arn, "GranteePrincipal": user_arn, "Operations": ["Encrypt"]}
        return lambda: admin.create_grant(**{**args, **extra})

    assert _code(create(Operations=[])) == "ValidationException"
    assert _code(create(GranteePrincipal="arn:aws:iam::bad")) == "InvalidArnException"
    assert _code(create(GrantTokens=["not-a-token"])) == "InvalidGrantTokenException"
    alias = unique("alias/grant")
    admin.create_alias(AliasName=alias, TargetKeyId=key_arn)
    assert _code(create(KeyId=alias)) == "NotFoundException"  # key id or ARN only
    bogus = "CBGT1.bm90LWEtcmVhbC10b2tlbg"
    assert (
        _code(lambda: admin.encrypt(KeyId=key_arn, Plaintext=b"x", GrantTokens=[bogus]))
        == "InvalidGrantTokenException"
    )
    assert (
        _code(lambda: admin.revoke_grant(KeyId=key_arn, GrantId="nope"))
        == "InvalidGrantIdException"
    )
    assert _code(lambda: admin.list_grants(KeyId=key_arn, Marker="x")) == "InvalidMarkerException"
    assert _code(lambda: admin.retire_grant(GrantId="0" * 64)) == "ValidationException"
    admin.disable_key(KeyId=key_arn)
    assert _code(create()) == "DisabledException"
