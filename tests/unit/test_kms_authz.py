"""kms_decide: the key policy is the root of access, identity policies count only where it
delegates to the account; KmsAuthorizer applies it with the key's stored policy."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cargobay.iam.authz import Authorizer, RequestContext
from cargobay.iam.policy import AuthRequest, parse_policy
from cargobay.iam.principal import Principal
from cargobay.kms.authz import KmsAuthorizer, kms_decide
from cargobay.kms.errors import AccessDeniedException
from cargobay.kms.model import default_key_policy, managed_key_policy
from kmshelp import ACCOUNT, OTHER_ACCOUNT, kms_service

KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
USER = f"arn:aws:iam::{ACCOUNT}:user/dev"


def _request(principal: str = USER, action: str = "kms:Decrypt", **context: object) -> AuthRequest:
    account = principal.split(":")[4]
    return AuthRequest(principal, account, action, KEY_ARN, ACCOUNT, context=context)  # type: ignore[arg-type]


def _identity(action: str = "kms:*", effect: str = "Allow") -> list:
    doc = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": effect, "Action": action, "Resource": "*"}],
    }
    return [parse_policy(json.dumps(doc))]


def _key_policy(*statements: dict) -> object:
    return parse_policy(
        json.dumps({"Version": "2012-10-17", "Statement": list(statements)}), resource_policy=True
    )


DEFAULT = parse_policy(default_key_policy(ACCOUNT), resource_policy=True)


def test_default_policy_delegates_to_identity_policies() -> None:
    assert kms_decide(_request(), _identity(), DEFAULT) == "Allow"
    assert kms_decide(_request(), [], DEFAULT) == "ImplicitDeny"
    assert kms_decide(_request(), [], DEFAULT, is_account_admin=True) == "Allow"
    assert kms_decide(_request(), _identity("kms:Encrypt"), DEFAULT) == "ImplicitDeny"


def test_without_delegation_identity_policies_do_not_suffice() -> None:
    only_ops = _key_policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/ops"},
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    assert kms_decide(_request(), _identity(), only_ops) == "ImplicitDeny"
    assert kms_decide(_request(), [], only_ops, is_account_admin=True) == "ImplicitDeny"
    ops = f"arn:aws:iam::{ACCOUNT}:user/ops"
    assert kms_decide(_request(ops), [], only_ops) == "Allow"
    assert kms_decide(_request(), _identity(), None) == "ImplicitDeny"


def test_explicit_deny_wins_on_either_side() -> None:
    deny = _key_policy(
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {"Effect": "Deny", "Principal": {"AWS": USER}, "Action": "kms:Decrypt", "Resource": "*"},
    )
    assert kms_decide(_request(), _identity(), deny) == "Deny"
    assert (
        kms_decide(_request(), _identity("kms:Decrypt", "Deny"), DEFAULT, is_account_admin=True)
        == "Deny"
    )


def test_cross_account_needs_both_sides() -> None:
    stranger = f"arn:aws:iam::{OTHER_ACCOUNT}:user/ci"
    assert kms_decide(_request(stranger), _identity(), DEFAULT) == "ImplicitDeny"
    shared = _key_policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{OTHER_ACCOUNT}:root"},
            "Action": "kms:Decrypt",
            "Resource": "*",
        }
    )
    assert kms_decide(_request(stranger), _identity(), shared) == "Allow"
    assert kms_decide(_request(stranger), [], shared) == "ImplicitDeny"


def test_managed_key_is_usable_only_through_the_service() -> None:
    managed = parse_policy(managed_key_policy(ACCOUNT, "us-east-1", "ecr"), resource_policy=True)
    via = {"kms:ViaService": "ecr.us-east-1.amazonaws.com", "kms:CallerAccount": ACCOUNT}
    assert kms_decide(_request(**via), _identity(), managed) == "Allow"
    assert kms_decide(_request(), _identity(), managed) == "ImplicitDeny"
    describe = _request(action="kms:DescribeKey")
    assert kms_decide(describe, _identity(), managed) == "Allow"
    assert (
        kms_decide(_request(action="kms:DisableKey"), _identity(), managed, is_account_admin=True)
        == "ImplicitDeny"
    )


def test_kms_authorizer_reads_the_stored_key_policy(tmp_path: Path) -> None:
    async def scenario() -> None:
        kms = await kms_service(tmp_path)
        try:
            access = KmsAuthorizer(Authorizer(kms.db))
            admin = Principal(ACCOUNT, "admin", "AKIAADMIN", is_admin=True)
            created = await kms.create_key(ACCOUNT)
            key = await kms.key(ACCOUNT, created["KeyMetadata"]["KeyId"])
            await access.require(admin, "kms:Encrypt", key)
            stranger = Principal(OTHER_ACCOUNT, "admin", "AKIAOTHER", is_admin=True)
            with pytest.raises(AccessDeniedException, match="kms:Encrypt"):
                await access.require(stranger, "kms:Encrypt", key)
            ops = json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/ops"},
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ],
                }
            )
            await kms.put_key_policy(ACCOUNT, key.id, ops)
            key = await kms.key(ACCOUNT, key.id)
            assert not await access.allowed(admin, "kms:Encrypt", key)
            ctx_policy = json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                            "Action": "kms:Decrypt",
                            "Resource": "*",
                            "Condition": {
                                "StringEquals": {"kms:EncryptionContext:repository": "secure/app"}
                            },
                        }
                    ],
                }
            )
            await kms.put_key_policy(ACCOUNT, key.id, ctx_policy)
            key = await kms.key(ACCOUNT, key.id)
            assert await access.allowed(
                admin, "kms:Decrypt", key, encryption_context={"repository": "secure/app"}
            )
            assert not await access.allowed(
                admin, "kms:Decrypt", key, encryption_context={"repository": "other"}
            )
        finally:
            await kms.db.dispose()

    asyncio.run(scenario())


def test_kms_authorizer_evaluates_the_global_keys_beside_the_kms_ones(tmp_path: Path) -> None:
    """A key policy sees the global condition keys every door builds (`condition_keys`) and
    the KMS ones; a call's own extra keys win over the KMS ones, as they always did."""
    via = "ecr.us-east-1.amazonaws.com"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                "Action": "kms:Encrypt",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "aws:username": "admin",
                        "aws:PrincipalType": "User",
                        "kms:CallerAccount": ACCOUNT,
                        "kms:ViaService": via,
                    },
                    "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                    "Bool": {"aws:SecureTransport": "true"},
                },
            }
        ],
    }

    async def scenario() -> None:
        kms = await kms_service(tmp_path)
        try:
            access = KmsAuthorizer(Authorizer(kms.db))
            admin = Principal(ACCOUNT, "admin", "AKIAADMIN", is_admin=True)
            created = await kms.create_key(ACCOUNT, policy=json.dumps(policy))
            key = await kms.key(ACCOUNT, created["KeyMetadata"]["KeyId"])
            inside = RequestContext(source_ip="10.1.2.3", secure_transport=True)
            outside = RequestContext(source_ip="192.168.1.1", secure_transport=True)
            plain = RequestContext(source_ip="10.1.2.3")
            assert await access.allowed(admin, "kms:Encrypt", key, context=inside, via_service=via)
            for context in (outside, plain):
                assert not await access.allowed(
                    admin, "kms:Encrypt", key, context=context, via_service=via
                )
            assert not await access.allowed(admin, "kms:Encrypt", key, context=inside)
            named = RequestContext("10.1.2.3", True, extra={"kms:ViaService": via})
            assert await access.allowed(admin, "kms:Encrypt", key, context=named)
            other = RequestContext("10.1.2.3", True, extra={"kms:ViaService": "s3.x"})
            assert not await access.allowed(
                admin, "kms:Encrypt", key, context=other, via_service=via
            )
        finally:
            await kms.db.dispose()

    asyncio.run(scenario())
