"""Values SQLite stores without complaint but PostgreSQL would refuse (NUL characters, strings
longer than a column): each is either stored whole or refused with the protocol's own error on
every backend, never a 500. CI runs this file on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

from e2e.ecrhelp import client as ecr_client
from e2e.ecrhelp import raises, unique
from e2e.ocihttp import OCI_CONFIG, OCI_MANIFEST, Client, assert_error, descriptor, unique_repo


def _manifest(client: Client, repo: str, **fields: object) -> bytes:
    config = b'{"architecture": "amd64", "os": "linux"}'
    client.push_blob(repo, config)
    body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, config)}
    body["layers"] = []
    body.update(fields)
    return json.dumps(body).encode()


def test_long_artifact_type_is_stored_whole(registry) -> None:
    client = Client(registry)
    repo = unique_repo("values")
    subject = client.push_image(repo, "base")
    artifact_type = "application/vnd.example." + "x" * 300 + "+json"
    manifest = _manifest(
        client,
        repo,
        artifactType=artifact_type,
        subject={
            "mediaType": OCI_MANIFEST,
            "digest": subject.digest,
            "size": len(subject.manifest),
        },
    )
    digest = client.push_manifest(repo, "long", manifest, OCI_MANIFEST)
    referrers = client.get(f"/v2/{repo}/referrers/{subject.digest}").json()["manifests"]
    assert [(r["digest"], r["artifactType"]) for r in referrers] == [(digest, artifact_type)]


def test_control_characters_in_media_types_are_manifest_invalid(registry) -> None:
    client = Client(registry)
    repo = unique_repo("values")
    bad_artifact = _manifest(client, repo, artifactType="application/x\u0000y")
    assert_error(
        client.put_manifest(repo, "nul", bad_artifact, OCI_MANIFEST), 400, "MANIFEST_INVALID"
    )
    config = b"{}"
    client.push_blob(repo, config)
    bad_config = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": descriptor("application/vnd.x\u0000", config),
            "layers": [],
        }
    ).encode()
    assert_error(
        client.put_manifest(repo, "nul2", bad_config, OCI_MANIFEST), 400, "MANIFEST_INVALID"
    )


def test_ecr_tag_values_and_kms_keys_are_validated(registry) -> None:
    ecr = ecr_client(registry)
    name = unique("values/ecr")
    arn = ecr.create_repository(repositoryName=name)["repository"]["repositoryArn"]
    with raises("InvalidTagParameterException"):
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": "k", "Value": "a\u0000b"}])
    with raises("InvalidTagParameterException"):
        ecr.tag_resource(resourceArn=arn, tags=[{"Key": "k\u0001", "Value": "v"}])
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "k" * 128, "Value": "v" * 256}])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [
        {"Key": "k" * 128, "Value": "v" * 256}
    ]
    with raises("InvalidParameterException"):
        ecr.create_repository(
            repositoryName=unique("values/kms"),
            encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "k" * 2049},
        )
    # 2,048 characters fit the model, but name no key: KMS refuses it, as ECR's KmsException.
    with raises("KmsException"):
        ecr.create_repository(
            repositoryName=unique("values/kms"),
            encryptionConfiguration={"encryptionType": "KMS", "kmsKey": "k" * 2048},
        )
