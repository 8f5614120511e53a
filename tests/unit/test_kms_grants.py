"""The grant rules of cargobay.kms.grants: constraints (keys without case, values exactly),
operations without an encryption context, grants made through grants no wider than their
parent, who may retire, and grant tokens."""

from __future__ import annotations

import pytest

from cargobay.kms.errors import InvalidGrantTokenException, ValidationException
from cargobay.kms.grants import (
    Grant,
    at_least_as_strict,
    can_retire,
    check_tokens,
    constraint_holds,
    grant_permits,
    new_token,
    token_grant_id,
)

USER = "arn:aws:iam::123456789012:user/app"
RETIRER = "arn:aws:iam::123456789012:user/ops"


def _grant(operations: tuple[str, ...], constraints: dict | None = None) -> Grant:
    return Grant("a" * 64, "key", "123456789012", None, USER, RETIRER, operations, constraints, 0)


def test_constraints() -> None:
    subset = {"EncryptionContextSubset": {"App": "shop"}}
    assert constraint_holds(subset, {"app": "shop", "more": "x"})
    assert not constraint_holds(subset, {"app": "SHOP"})
    assert not constraint_holds(subset, None)
    equals = {"EncryptionContextEquals": {"app": "shop"}}
    assert constraint_holds(equals, {"APP": "shop"})
    assert not constraint_holds(equals, {"app": "shop", "more": "x"})
    assert constraint_holds(None, None)


def test_constraints_apply_only_to_operations_with_an_encryption_context() -> None:
    grant = _grant(("Encrypt", "DescribeKey"), {"EncryptionContextEquals": {"a": "b"}})
    assert grant_permits(grant, "DescribeKey", None)
    assert not grant_permits(grant, "Encrypt", None)
    assert grant_permits(grant, "Encrypt", {"a": "b"})
    assert not grant_permits(grant, "Decrypt", {"a": "b"})


def test_grants_through_grants_are_no_wider() -> None:
    open_parent = _grant(("CreateGrant", "Encrypt", "Decrypt"))
    assert at_least_as_strict(["Encrypt"], None, open_parent)
    assert not at_least_as_strict(["Sign"], None, open_parent)
    parent = _grant(("CreateGrant", "Encrypt"), {"EncryptionContextSubset": {"app": "shop"}})
    assert not at_least_as_strict(["Encrypt"], None, parent)
    assert at_least_as_strict(
        ["Encrypt"], {"EncryptionContextSubset": {"App": "shop", "x": "y"}}, parent
    )
    assert at_least_as_strict(["Encrypt"], {"EncryptionContextEquals": {"app": "shop"}}, parent)
    assert not at_least_as_strict(["Encrypt"], {"EncryptionContextSubset": {"x": "y"}}, parent)


def test_who_may_retire() -> None:
    assert can_retire(_grant(("Encrypt",)), RETIRER, "123456789012", False)
    assert not can_retire(_grant(("Encrypt",)), USER, "123456789012", False)
    assert can_retire(_grant(("Encrypt", "RetireGrant")), USER, "123456789012", False)
    assert can_retire(_grant(("Encrypt",)), "arn:aws:iam::123456789012:root", "123456789012", True)
    assert not can_retire(_grant(("Encrypt",)), "arn:aws:iam::999:root", "999999999999", True)


def test_tokens() -> None:
    token = new_token("ab" * 32)
    assert token_grant_id(token) == "ab" * 32
    check_tokens([token, new_token("cd" * 32)])
    for bad in ("nope", "CBGT1.!!", "CBGT1.YWJj"):
        with pytest.raises(InvalidGrantTokenException):
            token_grant_id(bad)
    with pytest.raises(ValidationException):
        check_tokens([token] * 11)


def test_grant_tokens_are_checked_where_the_model_has_them() -> None:
    from botocore.loaders import Loader

    from cargobay.kms import door, grant_door

    model = Loader().load_service_model("kms", "service-2")
    shapes = model["shapes"]
    expected = {
        name
        for name in door.HANDLERS
        if "GrantTokens" in shapes[model["operations"][name]["input"]["shape"]]["members"]
    }
    assert expected == grant_door.TOKEN_OPERATIONS
