"""buildah against a real cargobay: build from scratch, push as OCI and as Docker schema 2,
and read the result back with skopeo."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import require_tool
from imagebuilder import sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class Buildah:
    """buildah on private vfs storage, so tests never touch the system's images."""

    def __init__(self, root: Path, runroot: Path) -> None:
        self.root = root
        # containers/storage refuses a run root longer than 50 characters.
        self.runroot = runroot
        root.mkdir(parents=True, exist_ok=True)
        runroot.mkdir(parents=True, exist_ok=True)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [
            require_tool("buildah"),
            "--root", str(self.root),
            "--runroot", str(self.runroot),
            "--storage-driver", "vfs",
            *args,
        ]  # fmt: skip
        env = {**os.environ, "HOME": str(self.root.parent), "BUILDAH_ISOLATION": "chroot"}
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        if check and proc.returncode != 0:
            pytest.fail(f"buildah {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc


@pytest.fixture
def buildah(tmp_path: Path) -> Iterator[Buildah]:
    runroot = Path(tempfile.mkdtemp(prefix="cbbah-", dir="/tmp"))
    yield Buildah(tmp_path / "buildah", runroot)
    shutil.rmtree(runroot, ignore_errors=True)


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120
    )
    if proc.returncode != 0:
        pytest.fail(f"skopeo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def build_from_scratch(buildah: Buildah, tmp_path: Path, fmt: str) -> tuple[str, bytes, str]:
    """`buildah from scratch` + `copy` + `config` + `commit`: returns (image, payload, label)."""
    payload = os.urandom(3000) + b"\nhello from buildah\n"
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    label = uuid.uuid4().hex
    container = buildah("from", "scratch").stdout.strip()
    try:
        buildah("copy", container, str(source), "/payload.bin")
        buildah(
            "config", "--cmd", "/payload.bin", "--label", f"org.example.build={label}",
            "--arch", "amd64", "--os", "linux", container,
        )  # fmt: skip
        image = f"localhost/cargobay-test-{fmt}:{label[:8]}"
        buildah("commit", "--format", fmt, container, image)
    finally:
        buildah("rm", container)
    return image, payload, label


def layer_files(layer: bytes) -> dict[str, bytes]:
    """The regular files in a gzip'd tar layer, by path."""
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
        return {
            m.name.lstrip("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@pytest.mark.parametrize(
    ("fmt", "manifest_type", "config_type", "layer_type"),
    [
        ("oci", OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
        ("docker", DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
    ],
)
def test_build_from_scratch_and_push(
    registry,
    buildah: Buildah,
    tmp_path: Path,
    fmt: str,
    manifest_type: str,
    config_type: str,
    layer_type: str,
) -> None:
    """An image built from scratch and pushed with `--format oci|docker` is stored with that
    manifest type; skopeo reads back the exact bytes, the copied file and the config."""
    image, payload, label = build_from_scratch(buildah, tmp_path, fmt)
    name = f"buildah/{fmt}-{label[:10]}"
    digest_file = tmp_path / "digest"
    buildah(
        "push", "--tls-verify=false", "--creds", registry.creds_arg, "--format", fmt,
        "--digestfile", str(digest_file), image, f"docker://{registry.host}/{name}:1.0",
    )  # fmt: skip
    pushed = digest_file.read_text().strip()

    raw = skopeo(
        "inspect", "--raw", "--creds", registry.creds_arg, "--tls-verify=false",
        f"docker://{registry.host}/{name}:1.0",
    ).stdout.encode()  # fmt: skip
    assert sha256(raw) == pushed
    manifest = json.loads(raw)
    assert manifest["mediaType"] == manifest_type
    assert manifest["config"]["mediaType"] == config_type
    assert [layer["mediaType"] for layer in manifest["layers"]] == [layer_type]

    response = registry.session().get(
        f"{registry.url}/v2/{name}/manifests/1.0", headers={"Accept": manifest_type}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == manifest_type
    assert response.headers["Docker-Content-Digest"] == pushed

    # `dir:` keeps the manifest and blobs exactly as the registry serves them.
    back = tmp_path / "back"
    skopeo(
        "copy", "--src-creds", registry.creds_arg, "--src-tls-verify=false",
        f"docker://{registry.host}/{name}:1.0", f"dir:{back}",
    )  # fmt: skip
    assert (back / "manifest.json").read_bytes() == raw
    config_bytes = (back / manifest["config"]["digest"].split(":")[1]).read_bytes()
    assert sha256(config_bytes) == manifest["config"]["digest"]
    config = json.loads(config_bytes)
    assert config["architecture"] == "amd64"
    assert config["config"]["Cmd"] == ["/payload.bin"]
    assert config["config"]["Labels"]["org.example.build"] == label
    layer = (back / manifest["layers"][0]["digest"].split(":")[1]).read_bytes()
    assert sha256(layer) == manifest["layers"][0]["digest"]
    assert layer_files(layer)["payload.bin"] == payload

    inspected = skopeo(
        "inspect", "--creds", registry.creds_arg, "--tls-verify=false",
        f"docker://{registry.host}/{name}:1.0",
    )  # fmt: skip
    info = json.loads(inspected.stdout)
    assert info["Digest"] == pushed
    assert info["Labels"]["org.example.build"] == label

    # The image ID buildah computed is the config digest the registry holds.
    local_id = buildah("inspect", "--type", "image", "--format", "{{.FromImageID}}", image)
    assert f"sha256:{local_id.stdout.strip()}" == manifest["config"]["digest"]
