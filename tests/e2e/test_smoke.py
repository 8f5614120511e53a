"""The laptop journey: skopeo pushes an image and pulls it back byte-identical."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import require_tool


def test_skopeo_push_pull_roundtrip(registry, image, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    ref = f"docker://{registry.host}/team/app:1.0"
    subprocess.run(
        [
            skopeo,
            "copy",
            "--dest-creds",
            registry.creds_arg,
            "--dest-tls-verify=false",
            f"oci:{image.layout}:latest",
            ref,
        ],
        check=True,
        capture_output=True,
    )
    back = tmp_path / "back"
    subprocess.run(
        [
            skopeo,
            "copy",
            "--src-creds",
            registry.creds_arg,
            "--src-tls-verify=false",
            ref,
            f"oci:{back}:latest",
        ],
        check=True,
        capture_output=True,
    )
    for digest, data in image.blobs.items():
        assert (back / "blobs" / "sha256" / digest.split(":")[1]).read_bytes() == data
    pulled = (back / "blobs" / "sha256" / image.manifest_digest.split(":")[1]).read_bytes()
    assert pulled == image.manifest


def test_anonymous_is_challenged(registry) -> None:
    import requests

    response = requests.get(f"{registry.url}/v2/")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert registry.session().get(f"{registry.url}/v2/").status_code == 200
