"""Managed signing end to end: signing profiles through boto3's `signer` client, the ECR
signing configuration, and a skopeo push signed with a Notary Project signature that verifies
against the profile's exported root certificate (tests/notaryverify.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from e2e.ecrhelp import ACCOUNT, REGION, allow, client, make_user, push, raises, unique
from e2e.signinghelp import PLATFORM, signer_client, wait_signed
from imagebuilder import Image, build_image
from notaryverify import VerificationError, tampered, verify


@pytest.fixture(scope="module")
def small_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_image(tmp_path_factory.mktemp("signing-image") / "img", [1500])


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


# -- signing on push ------------------------------------------------------------------------------

SIGNATURE = "application/vnd.cncf.notary.signature"


def _export_root(server, profile: str) -> bytes:
    command = [sys.executable, "-m", "cargobay", "admin", "--data-dir", str(server.data_dir)]
    proc = subprocess.run(
        [*command, "signing", "export-root", profile],
        capture_output=True,
        timeout=60,
        env=server.process_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"-----BEGIN CERTIFICATE-----")
    return proc.stdout


def _profile(registry, prefix: str) -> tuple[str, str]:
    name = _name(prefix)
    created = signer_client(registry).put_signing_profile(profileName=name, platformId=PLATFORM)
    return name, created["arn"]


def _rule(arn: str, *filters: str) -> dict:
    rule: dict = {"signingProfileArn": arn}
    if filters:
        rule["repositoryFilters"] = [{"filter": f, "filterType": "WILDCARD_MATCH"} for f in filters]
    return rule


def test_a_pushed_image_gets_a_notation_signature_that_verifies(
    registry, tmp_path: Path, small_image: Image
) -> None:
    """Create a profile, configure signing, push with skopeo, wait for COMPLETE, fetch the
    signature through the referrers API and verify it with the exported root certificate."""
    ecr = client(registry)
    profile, arn = _profile(registry, "release")
    prefix = unique("signed")
    rules = [_rule(arn, f"{prefix}/*")]
    put = ecr.put_signing_configuration(signingConfiguration={"rules": rules})
    assert put["signingConfiguration"]["rules"] == rules
    got = ecr.get_signing_configuration()
    assert got == {**got, "registryId": ACCOUNT, "signingConfiguration": {"rules": rules}}

    name, unsigned = f"{prefix}/app", unique("unsigned")
    push(registry, small_image, f"{name}:1.0")
    push(registry, small_image, f"{unsigned}:1.0")
    digest = small_image.manifest_digest
    statuses = wait_signed(ecr, name, digest)
    assert statuses == [{"signingProfileArn": arn, "status": "COMPLETE"}]
    by_tag = ecr.describe_image_signing_status(repositoryName=name, imageId={"imageTag": "1.0"})
    assert by_tag["imageId"] == {"imageDigest": digest, "imageTag": "1.0"}
    assert by_tag["registryId"] == ACCOUNT and by_tag["repositoryName"] == name
    other = ecr.describe_image_signing_status(
        repositoryName=unsigned, imageId={"imageDigest": digest}
    )
    assert other["signingStatuses"] == []

    # The signature, as Notation finds it: the referrers API, then the manifest and its layer.
    http = registry.session()
    listed = http.get(
        f"{registry.url}/v2/{name}/referrers/{digest}", params={"artifactType": SIGNATURE}
    )
    assert listed.status_code == 200, listed.text
    referrers = listed.json()["manifests"]
    assert [r["artifactType"] for r in referrers] == [SIGNATURE]
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    manifest = http.get(
        f"{registry.url}/v2/{name}/manifests/{referrers[0]['digest']}", headers=accept
    )
    assert manifest.status_code == 200
    document = manifest.json()
    assert document["subject"]["digest"] == digest
    assert document["config"]["mediaType"] == SIGNATURE
    [layer] = document["layers"]
    assert layer["mediaType"] == "application/jose+json"
    envelope = http.get(f"{registry.url}/v2/{name}/blobs/{layer['digest']}").content
    assert hashlib.sha256(envelope).hexdigest() == layer["digest"].removeprefix("sha256:")

    root = _export_root(registry, profile)
    payload = verify(envelope, root)
    target = payload["targetArtifact"]
    assert target["digest"] == digest
    assert target["size"] == len(small_image.manifest)
    with pytest.raises(VerificationError):  # the signature covers the image's digest
        verify(tampered(envelope, "sha256:" + "0" * 64), root)
    _, other_arn = _profile(registry, "stranger")
    stranger_root = _export_root(registry, other_arn.rsplit("/", 1)[1])
    with pytest.raises(VerificationError):  # and trusts only its own profile's root
        verify(envelope, stranger_root)

    # A re-push of the same image (a new tag) signs nothing again.
    push(registry, small_image, f"{name}:again")
    again = http.get(f"{registry.url}/v2/{name}/referrers/{digest}").json()["manifests"]
    assert len([r for r in again if r.get("artifactType") == SIGNATURE]) == 1

    deleted = ecr.delete_signing_configuration()
    assert deleted["signingConfiguration"] == {"rules": rules}


def test_signing_failures_and_configuration_errors(registry, small_image: Image) -> None:
    ecr = client(registry)
    signer = signer_client(registry)
    with contextlib.suppress(ClientError):
        ecr.delete_signing_configuration()
    with raises("SigningConfigurationNotFoundException"):
        ecr.get_signing_configuration()
    with raises("SigningConfigurationNotFoundException"):
        ecr.delete_signing_configuration()
    with raises("InvalidParameterException"):
        ecr.put_signing_configuration(
            signingConfiguration={"rules": [{"signingProfileArn": "arn:aws:kms:nope"}]}
        )

    canceled, canceled_arn = _profile(registry, "gone")
    signer.cancel_signing_profile(profileName=canceled)
    missing_arn = f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/{_name('missing')}"
    prefix = unique("failing")
    rules = [_rule(canceled_arn, f"{prefix}/*"), _rule(missing_arn, f"{prefix}/app")]
    ecr.put_signing_configuration(signingConfiguration={"rules": rules})
    name = f"{prefix}/app"
    push(registry, small_image, f"{name}:1")
    statuses = {
        s["signingProfileArn"]: s for s in wait_signed(ecr, name, small_image.manifest_digest)
    }
    assert set(statuses) == {canceled_arn, missing_arn}
    assert statuses[canceled_arn]["status"] == "FAILED"
    assert statuses[canceled_arn]["failureCode"] == "SigningProfileNotActive"
    assert statuses[missing_arn]["failureCode"] == "SigningProfileNotFound"
    assert all(s["failureReason"] for s in statuses.values())

    with raises("ImageNotFoundException"):
        ecr.describe_image_signing_status(repositoryName=name, imageId={"imageTag": "nope"})
    with raises("RepositoryNotFoundException"):
        ecr.describe_image_signing_status(
            repositoryName=unique("absent"), imageId={"imageTag": "1"}
        )
    ecr.delete_signing_configuration()


def _signed_request(registry, method: str, path: str, body: bytes = b"", query: str = ""):
    url = f"{registry.url}{path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers={})
    SigV4Auth(Credentials(*registry.credentials), "signer", REGION).add_auth(request)
    return requests.request(
        method, url, data=body, headers=dict(request.headers.items()), timeout=60
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "query"),
    [
        ("PUT", "/signing-profiles/ok_name", b"not json", ""),
        ("PUT", "/signing-profiles/ok_name", b"[1, 2]", ""),
        ("PUT", "/signing-profiles/ok_name", b'{"platformId": 5}', ""),
        ("PUT", "/signing-profiles/ok_name", b"{}", ""),
        (
            "PUT",
            "/signing-profiles/ok_name",
            json.dumps(
                {"platformId": PLATFORM, "signatureValidityPeriod": {"value": 2**70}}
            ).encode(),
            "",
        ),
        (
            "PUT",
            "/signing-profiles/ok_name",
            json.dumps({"platformId": PLATFORM, "signatureValidityPeriod": "DAYS"}).encode(),
            "",
        ),
        ("PUT", "/signing-profiles/x", json.dumps({"platformId": PLATFORM}).encode(), ""),
        ("PUT", "/signing-profiles/bad-name", json.dumps({"platformId": PLATFORM}).encode(), ""),
        ("PUT", "/signing-profiles/" + "a" * 65, json.dumps({"platformId": PLATFORM}).encode(), ""),
        ("GET", "/signing-profiles", b"", "maxResults=abc"),
        ("GET", "/signing-profiles", b"", "maxResults=0"),
        ("GET", "/signing-profiles", b"", "statuses=Bogus"),
        ("GET", "/signing-profiles", b"", "includeCanceled=maybe"),
        ("GET", "/signing-profiles", b"", "nextToken=%21%21%21"),
        ("GET", "/signing-profiles/ok_name", b"", "profileOwner=12"),
    ],
)
def test_the_signer_door_answers_bad_input_with_validation_errors(
    registry, method: str, path: str, body: bytes, query: str
) -> None:
    response = _signed_request(registry, method, path, body, query)
    assert response.status_code == 400, response.text
    assert response.json()["__type"] == "ValidationException"
    assert response.headers["x-amzn-ErrorType"] == "ValidationException"


def test_the_signer_door_refuses_unsigned_and_unknown_requests(registry) -> None:
    anonymous = requests.get(f"{registry.url}/signing-profiles", timeout=60)
    assert anonymous.status_code in (400, 403), anonymous.text
    assert "__type" in anonymous.json()
    unknown = _signed_request(registry, "POST", "/signing-profiles")
    assert unknown.status_code == 404
    assert unknown.json()["__type"] == "UnknownOperationException"
    # Signed for another service: refused.
    url = f"{registry.url}/signing-profiles"
    request = AWSRequest(method="GET", url=url, headers={})
    SigV4Auth(Credentials(*registry.credentials), "ecr", REGION).add_auth(request)
    wrong = requests.get(url, headers=dict(request.headers.items()), timeout=60)
    assert wrong.status_code in (400, 403) and "__type" in wrong.json()
