"""Managed signing end to end: signing profiles through boto3's `signer` client, the ECR
signing configuration, and a skopeo push signed with a Notary Project signature that verifies
against the profile's exported root certificate (tests/notaryverify.py)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from e2e.ecrhelp import ACCOUNT, REGION, allow, make_user, unique
from e2e.signinghelp import PLATFORM, signer_client


def _name(prefix: str) -> str:
    return unique(prefix).replace("-", "_")


def test_signing_profiles_through_boto3(registry) -> None:
    signer = signer_client(registry)
    name = _name("prof")
    created = signer.put_signing_profile(
        profileName=name,
        platformId=PLATFORM,
        signatureValidityPeriod={"value": 12, "type": "MONTHS"},
        tags={"team": "red"},
    )
    arn = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/{name}"
    assert created["arn"] == arn
    assert created["profileVersionArn"] == f"{arn}/{created['profileVersion']}"
    got = signer.get_signing_profile(profileName=name)
    assert got["status"] == "Active"
    assert got["platformId"] == PLATFORM
    assert got["signatureValidityPeriod"] == {"value": 12, "type": "MONTHS"}
    assert got["tags"] == {"team": "red"}
    assert got["profileVersion"] == created["profileVersion"]

    # A second put of an active profile is a new version of it.
    again = signer.put_signing_profile(profileName=name, platformId=PLATFORM)
    assert again["arn"] == arn and again["profileVersion"] != created["profileVersion"]

    listed = signer.list_signing_profiles()["profiles"]
    assert name in [p["profileName"] for p in listed]

    signer.cancel_signing_profile(profileName=name)
    assert signer.get_signing_profile(profileName=name)["status"] == "Canceled"
    assert name not in [p["profileName"] for p in signer.list_signing_profiles()["profiles"]]
    with_canceled = signer.list_signing_profiles(includeCanceled=True)["profiles"]
    assert name in [p["profileName"] for p in with_canceled]
    only_canceled = signer.list_signing_profiles(statuses=["Canceled"])["profiles"]
    assert {p["status"] for p in only_canceled} == {"Canceled"}
    with pytest.raises(ClientError) as info:  # a canceled profile's name is not reused
        signer.put_signing_profile(profileName=name, platformId=PLATFORM)
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_signing_profile_errors_and_pagination(registry) -> None:
    signer = signer_client(registry)
    for code, call in [
        ("ResourceNotFoundException", lambda: signer.get_signing_profile(profileName="nope_x")),
        ("ResourceNotFoundException", lambda: signer.cancel_signing_profile(profileName="no_x")),
        (
            "ValidationException",
            lambda: signer.put_signing_profile(profileName="p_x", platformId="AWSLambda-SHA384"),
        ),
        (
            "ValidationException",
            lambda: signer.put_signing_profile(
                profileName="p_y",
                platformId=PLATFORM,
                signatureValidityPeriod={"value": 20, "type": "YEARS"},
            ),
        ),
        (
            "ValidationException",
            lambda: signer.put_signing_profile(
                profileName="p_z", platformId=PLATFORM, signingMaterial={"certificateArn": "x"}
            ),
        ),
    ]:
        with pytest.raises(ClientError) as info:
            call()
        assert info.value.response["Error"]["Code"] == code, info.value.response
    names = sorted(_name("page") for _ in range(3))
    for name in names:
        signer.put_signing_profile(profileName=name, platformId=PLATFORM)
    seen: list[str] = []
    token = None
    while True:
        kwargs = {"maxResults": 2, **({"nextToken": token} if token else {})}
        page = signer.list_signing_profiles(**kwargs)
        assert len(page["profiles"]) <= 2
        seen += [p["profileName"] for p in page["profiles"]]
        token = page.get("nextToken")
        if not token:
            break
    assert [n for n in seen if n in names] == names
    assert len(seen) == len(set(seen))


def test_signing_profiles_need_signer_permissions(registry, tmp_path) -> None:
    policy = allow("signer:GetSigningProfile")
    key, secret = make_user(registry, unique("reader"), policy, tmp=tmp_path)
    signer = signer_client(registry, key, secret)
    admin = signer_client(registry)
    name = _name("perm")
    admin.put_signing_profile(profileName=name, platformId=PLATFORM)
    assert signer.get_signing_profile(profileName=name)["profileName"] == name
    with pytest.raises(ClientError) as info:
        signer.put_signing_profile(profileName=_name("denied"), platformId=PLATFORM)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as info:
        signer.list_signing_profiles()
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
