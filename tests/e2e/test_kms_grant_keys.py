"""KMS grants with boto3 against a real `cargobay serve` (issue 13): a grant matches its key
whichever way a caller names it (key id or key ARN in the grant operations, which refuse
aliases as AWS does; any name in the operations the grant allows), and the grants-per-key
quota (`kms_grants_per_key`, set small here; AWS's is 50,000) raises LimitExceededException."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from e2e.ecrhelp import ACCOUNT, make_user, unique
from e2e.kmshelp import kms_client
from server import Server

pytestmark = pytest.mark.backend

QUOTA = 3
NO_KMS = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "ecr:*", "Resource": "*"}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("kmsgrants") / "data"
    env = {"CARGOBAY_JOBS_ENABLED": "false", "CARGOBAY_KMS_GRANTS_PER_KEY": str(QUOTA)}
    registry = Server(data, workers=1, env=env).start()
    yield registry
    registry.discard()


def _user(server: Server, tmp_path: Path, prefix: str) -> tuple[Any, str]:
    name = unique(prefix)
    creds = make_user(server, name, NO_KMS, tmp=tmp_path)
    return kms_client(server, creds), f"arn:aws:iam::{ACCOUNT}:user/{name}"


def _error(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as info:
        call()
    error = info.value.response["Error"]
    return str(error["Code"]), str(error.get("Message", ""))


def test_a_grant_matches_its_key_by_id_or_arn_never_alias(server: Server, tmp_path: Path) -> None:
    admin = kms_client(server)
    key = admin.create_key(Description="named")["KeyMetadata"]
    key_id, key_arn = key["KeyId"], key["Arn"]
    alias = unique("alias/granted")
    admin.create_alias(AliasName=alias, TargetKeyId=key_id)
    alias_arn = key_arn.split(":key/")[0] + ":" + alias
    user, user_arn = _user(server, tmp_path, "named")

    by_arn = admin.create_grant(KeyId=key_arn, GranteePrincipal=user_arn, Operations=["Encrypt"])
    by_id = admin.create_grant(KeyId=key_id, GranteePrincipal=user_arn, Operations=["Decrypt"])
    # Listed under the key whichever way it is named; the entries name the key by its ARN.
    for name in (key_id, key_arn):
        grants = admin.list_grants(KeyId=name)["Grants"]
        assert {g["GrantId"] for g in grants} == {by_arn["GrantId"], by_id["GrantId"]}
        assert {g["KeyId"] for g in grants} == {key_arn}
    # The grantee uses the key under any of its names, aliases included.
    for name in (key_id, key_arn, alias, alias_arn):
        sealed = user.encrypt(KeyId=name, Plaintext=b"granted")["CiphertextBlob"]
        assert user.decrypt(CiphertextBlob=sealed, KeyId=key_arn)["Plaintext"] == b"granted"

    # The grant operations take a key id or key ARN only (botocore's kms model).
    for name in (alias, alias_arn):
        assert _error(lambda n=name: admin.list_grants(KeyId=n))[0] == "NotFoundException"
        assert (
            _error(lambda n=name: admin.revoke_grant(KeyId=n, GrantId=by_id["GrantId"]))[0]
            == "NotFoundException"
        )
        assert (
            _error(lambda n=name: admin.retire_grant(KeyId=n, GrantId=by_id["GrantId"]))[0]
            == "NotFoundException"
        )
    # Revoked by ARN a grant made by id, retired by key ARN and id one made by ARN.
    admin.revoke_grant(KeyId=key_arn, GrantId=by_id["GrantId"])
    admin.retire_grant(KeyId=key_arn, GrantId=by_arn["GrantId"])
    assert admin.list_grants(KeyId=key_id)["Grants"] == []
    assert _error(lambda: user.encrypt(KeyId=key_id, Plaintext=b"x"))[0] == "AccessDeniedException"


def test_grants_per_key_quota(server: Server, tmp_path: Path) -> None:
    admin = kms_client(server)
    key_arn = admin.create_key(Description="quota")["KeyMetadata"]["Arn"]
    other = admin.create_key(Description="other")["KeyMetadata"]["KeyId"]
    _, user_arn = _user(server, tmp_path, "quota")

    def grant(key: str = key_arn, **extra: Any) -> dict[str, Any]:
        return admin.create_grant(
            KeyId=key, GranteePrincipal=user_arn, Operations=["Encrypt"], **extra
        )

    made = [grant(Name="first")] + [grant() for _ in range(QUOTA - 1)]
    code, message = _error(grant)
    assert code == "LimitExceededException"
    assert key_arn in message and str(QUOTA) in message
    # The same named grant again is the existing grant: no new grant, so no quota needed.
    assert grant(Name="first")["GrantId"] == made[0]["GrantId"]
    # The quota is per key, and a revoked grant frees its place.
    assert grant(other)["GrantId"]
    admin.revoke_grant(KeyId=key_arn, GrantId=made[1]["GrantId"])
    assert grant()["GrantId"]
    assert len(admin.list_grants(KeyId=key_arn)["Grants"]) == QUOTA
    assert _error(grant)[0] == "LimitExceededException"
