"""The signer API end to end: signing profiles through boto3's `signer` client (answers checked
against botocore's model), their IAM actions, and hostile input to the REST door."""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from cargobay.aws import shapes
from e2e.ecrhelp import ACCOUNT, REGION, allow, make_user, unique
from e2e.signinghelp import PLATFORM, profile_name, signer_client
from shapecases import Generator


def test_signing_profiles_through_boto3(registry) -> None:
    signer = signer_client(registry)
    name = profile_name("prof")
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
    again = signer.put_signing_profile(
        profileName=name, platformId=PLATFORM, signingParameters={"team": "blue"}
    )
    assert again["arn"] == arn and again["profileVersion"] != created["profileVersion"]
    updated = signer.get_signing_profile(profileName=name)
    assert updated["signingParameters"] == {"team": "blue"}
    assert updated["signatureValidityPeriod"] == {"value": 12, "type": "MONTHS"}  # kept
    with pytest.raises(ClientError) as info:  # the certificates carry the validity period
        signer.put_signing_profile(
            profileName=name,
            platformId=PLATFORM,
            signatureValidityPeriod={"value": 2, "type": "YEARS"},
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"

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
    names = sorted(profile_name("page") for _ in range(3))
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
    name = profile_name("perm")
    admin.put_signing_profile(profileName=name, platformId=PLATFORM)
    assert signer.get_signing_profile(profileName=name)["profileName"] == name
    with pytest.raises(ClientError) as info:
        signer.put_signing_profile(profileName=profile_name("denied"), platformId=PLATFORM)
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"
    with pytest.raises(ClientError) as info:
        signer.list_signing_profiles()
    assert info.value.response["Error"]["Code"] == "AccessDeniedException"


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


_MODEL = shapes.load("signer")
_HTTP = {
    "PutSigningProfile": "PUT",
    "GetSigningProfile": "GET",
    "CancelSigningProfile": "DELETE",
    "ListSigningProfiles": "GET",
}


def _wire(operation: str, params: dict) -> tuple[str, str, bytes] | None:
    """(path, query, body) of a REST JSON request carrying `params`, or None when the case
    cannot be put on the wire (a profile name that is no path segment)."""
    params = dict(params)
    path = "/signing-profiles"
    if operation != "ListSigningProfiles":
        name = params.pop("profileName", None)
        if not isinstance(name, str) or not name or "/" in name:
            return None
        path += "/" + quote(name, safe="")
    members = _MODEL.shapes[_MODEL.input_shape(operation)]["members"]
    query: list[tuple[str, str]] = []
    for member in list(params):
        ref = members.get(member)
        if isinstance(ref, dict) and ref.get("location") == "querystring":
            value = params.pop(member)
            values = value if isinstance(value, list) else [value]
            for item in values:
                text = str(item).lower() if isinstance(item, bool) else str(item)
                query.append((ref["locationName"], text))
    body = json.dumps(params).encode() if operation == "PutSigningProfile" else b""
    return path, urlencode(query), body


@pytest.mark.parametrize("operation", sorted(_HTTP))
def test_every_broken_constraint_is_a_validation_exception(registry, operation: str) -> None:
    """Inputs generated from botocore's `signer` model, each breaking one constraint (or type),
    sent on the wire as the REST JSON protocol places them: 400 ValidationException."""
    checked = 0
    for case in Generator(_MODEL).cases(operation):
        if case.code_kind == "serialization" and _HTTP[operation] != "PUT":
            continue  # a query string carries text: `platformId=12345` is a valid string
        wire = _wire(operation, case.params)
        if wire is None:
            continue
        path, query, body = wire
        response = _signed_request(registry, _HTTP[operation], path, body, query)
        assert response.status_code == 400, (case, response.text)
        assert response.json()["__type"] == "ValidationException", (case, response.text)
        if operation == "PutSigningProfile" and case.code_kind == "constraint":
            assert case.expect in response.json()["message"], (case, response.text)
        checked += 1
    assert checked > 0
