"""The ECR calls on one repository (the reads BatchGetImage, GetDownloadUrlForLayer,
BatchCheckLayerAvailability, DescribeImages, ListImages, and the writes InitiateLayerUpload,
UploadLayerPart, CompleteLayerUpload, PutImage) verify SigV4 with the key row a worker
remembers, without the credentials-generation read, and have their one statement confirm it
(`ecr.caller`), before anything is answered or written. On two nodes sharing
one metadata database: a key deactivated, re-activated or deleted on one node is refused or
accepted by every worker of the other from the very next read, and an administrator key
re-installed under the same id with a new secret stops verifying with the old secret at once,
while the new secret is accepted at once."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from e2e.ecrhelp import allow, api_user, aws_client, raises, unique
from e2e.ecrhelp import client as ecr_client
from e2e.ocihttp import Client
from server import Server

ADMIN_KEY = "AKIAKEYSTATEMENT0000"
ADMIN_SECRET = "key-statement-admin-secret-0123456789ab"
NEW_SECRET = "key-statement-admin-secret-re-installed"
CALLS = 6  # enough calls for both workers of a node to answer some
READS = (
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
    "ecr:DescribeImages",
    "ecr:ListImages",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)


def _shared(secret: str) -> dict[str, str]:
    return {
        "CARGOBAY_ADMIN_ACCESS_KEY_ID": ADMIN_KEY,
        "CARGOBAY_ADMIN_SECRET_ACCESS_KEY": secret,
    }


def _node(tmp_path: Path, name: str, first: Server | None, env: dict[str, str]) -> Server:
    """A node; beside `first`, on its metadata database (and storage) with its sealing key."""
    if first is None:
        return Server(tmp_path / name, workers=2, env=env).start()
    database = first.database_url or f"sqlite:///{(first.data_dir / 'metadata.db')}"
    env = {**env, "CARGOBAY_SECRET_KEY": first.env["CARGOBAY_SECRET_KEY"]}
    node = Server(tmp_path / name, workers=2, env={**env, "CARGOBAY_DATABASE": database})
    node.backend_env = {**(first.backend_env or {}), "CARGOBAY_DATABASE": database}
    return node.start()


def _reads(ecr: Any, image: dict[str, Any]) -> list[Callable[[], Any]]:
    name, layer = image["name"], image["layer"]
    return [
        lambda: ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}]),
        lambda: ecr.get_download_url_for_layer(repositoryName=name, layerDigest=layer),
        lambda: ecr.batch_check_layer_availability(repositoryName=name, layerDigests=[layer]),
        lambda: ecr.describe_images(repositoryName=name),
        lambda: ecr.list_images(repositoryName=name),
    ]


def _writes(ecr: Any, image: dict[str, Any], upload_id: str) -> list[Callable[[], Any]]:
    """The writes, each refused before it writes anything (`upload_id`: an upload started
    while the key was active)."""
    name, data = image["name"], os.urandom(16)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return [
        lambda: ecr.initiate_layer_upload(repositoryName=name),
        lambda: ecr.upload_layer_part(
            repositoryName=name,
            uploadId=upload_id,
            partFirstByte=0,
            partLastByte=len(data) - 1,
            layerPartBlob=data,
        ),
        lambda: ecr.complete_layer_upload(
            repositoryName=name, uploadId=upload_id, layerDigests=[digest]
        ),
        lambda: ecr.put_image(
            repositoryName=name, imageManifest=image["manifest"], imageTag=unique("t")
        ),
    ]


def _pushed(ecr: Any, image: dict[str, Any]) -> None:
    """A layer uploaded and an image put through the ECR API."""
    name, data = image["name"], os.urandom(32)
    upload = ecr.initiate_layer_upload(repositoryName=name)["uploadId"]
    part = ecr.upload_layer_part(
        repositoryName=name,
        uploadId=upload,
        partFirstByte=0,
        partLastByte=len(data) - 1,
        layerPartBlob=data,
    )
    assert part["lastByteReceived"] == len(data) - 1
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    done = ecr.complete_layer_upload(repositoryName=name, uploadId=upload, layerDigests=[digest])
    assert done["layerDigest"] == digest
    tag = unique("t")
    put = ecr.put_image(repositoryName=name, imageManifest=image["manifest"], imageTag=tag)
    assert put["image"]["imageId"] == {"imageDigest": image["digest"], "imageTag": tag}


def _answered(ecr: Any, image: dict[str, Any]) -> None:
    for _ in range(CALLS // 2):  # each worker answers some, and remembers the key
        got, url, layers, described, listed = (read() for read in _reads(ecr, image))
        assert got["images"][0]["imageId"]["imageDigest"] == image["digest"]
        assert url["layerDigest"] == image["layer"]
        assert layers["layers"][0]["layerAvailability"] == "AVAILABLE"
        assert described["imageDetails"][0]["imageDigest"] == image["digest"]
        assert image["digest"] in {i["imageDigest"] for i in listed["imageIds"]}
        if "upload" in image:
            _pushed(ecr, image)


def _refused(ecr: Any, image: dict[str, Any], code: str) -> None:
    for _ in range(CALLS // 2):
        calls = _reads(ecr, image)
        if "upload" in image:
            calls += _writes(ecr, image, image["upload"])
        for call in calls:
            with raises(code):
                call()


def _bad_name(ecr: Any) -> None:
    ecr.batch_get_image(repositoryName="Not/A-Valid-Name", imageIds=[{"imageTag": "v1"}])


def _image(server: Server) -> dict[str, Any]:
    name = unique("keystmt/img")
    session = requests.Session()
    session.auth = (ADMIN_KEY, ADMIN_SECRET)
    pushed = Client(server, session).push_image(name, "v1", layer_sizes=(48,))
    layer = next(d for d, data in pushed.blobs.items() if len(data) == 48)
    manifest = pushed.manifest.decode()
    return {"name": name, "digest": pushed.digest, "layer": layer, "manifest": manifest}


def test_a_key_changed_on_one_node_is_refused_by_the_reads_of_the_other(tmp_path: Path) -> None:
    secret_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    first = _node(
        tmp_path, "node-a", None, {**_shared(ADMIN_SECRET), "CARGOBAY_SECRET_KEY": secret_key}
    )
    second = None
    try:
        second = _node(tmp_path, "node-b", first, _shared(ADMIN_SECRET))
        image = _image(first)
        iam = aws_client(first, "iam", (ADMIN_KEY, ADMIN_SECRET))
        user = api_user(first, "keystmt", allow(*READS), iam=iam)
        name, key = user.name, user.key
        ecr = user.ecr(second)
        # The writes as well: an upload this key started stays for the refused calls to name.
        image["upload"] = ecr.initiate_layer_upload(repositoryName=image["name"])["uploadId"]
        _answered(ecr, image)

        for _ in range(CALLS):  # a call that fails before its statement (a bad name) ...
            with raises("InvalidParameterException"):
                _bad_name(ecr)
        iam.update_access_key(UserName=name, AccessKeyId=key, Status="Inactive")
        for _ in range(CALLS):  # ... is refused as well once the key is inactive
            with raises("UnrecognizedClientException"):
                _bad_name(ecr)
        iam.update_access_key(UserName=name, AccessKeyId=key, Status="Active")
        _answered(ecr, image)
        iam.update_access_key(UserName=name, AccessKeyId=key, Status="Inactive")
        _refused(ecr, image, "UnrecognizedClientException")
        iam.update_access_key(UserName=name, AccessKeyId=key, Status="Active")
        _answered(ecr, image)
        # Losing the standing the remembered row has (no key change at all) is seen too.
        iam.delete_user_policy(UserName=name, PolicyName="p")
        _refused(ecr, image, "AccessDeniedException")
        iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(allow(*READS)))
        _answered(ecr, image)
        iam.delete_access_key(UserName=name, AccessKeyId=key)
        _refused(ecr, image, "UnrecognizedClientException")
    finally:
        if second is not None:
            second.stop()
        first.discard()


def test_a_re_installed_admin_secret_applies_to_the_reads_at_once(tmp_path: Path) -> None:
    """Node B's workers remember the administrator key with its old secret; node C starts on
    the same database with a new secret for the same key id (`bootstrap.ensure_admin`
    re-installs it). Node B refuses the old secret from the next read on (the statement sees
    the key holds another secret), and accepts the new one at once (a signature the remembered
    secret does not verify is checked again with the key re-read, not refused)."""
    secret_key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    first = _node(
        tmp_path, "node-a", None, {**_shared(ADMIN_SECRET), "CARGOBAY_SECRET_KEY": secret_key}
    )
    second = third = None
    try:
        second = _node(tmp_path, "node-b", first, _shared(ADMIN_SECRET))
        image = _image(first)
        old = ecr_client(second, ADMIN_KEY, ADMIN_SECRET)
        _answered(old, image)
        third = _node(tmp_path, "node-c", first, _shared(NEW_SECRET))
        _refused(old, image, "InvalidSignatureException")
        _answered(ecr_client(second, ADMIN_KEY, NEW_SECRET), image)
        _refused(old, image, "InvalidSignatureException")
        # The other way round: the new secret remembered, the old one re-installed.
        third.stop()
        third = _node(tmp_path, "node-c2", first, _shared(ADMIN_SECRET))
        _refused(ecr_client(second, ADMIN_KEY, NEW_SECRET), image, "InvalidSignatureException")
        _answered(old, image)
    finally:
        for node in (third, second):
            if node is not None:
                node.stop()
        first.discard()
