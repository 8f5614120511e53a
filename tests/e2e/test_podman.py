"""podman against a real cargobay: login, push and pull back, with private vfs storage."""

from __future__ import annotations

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
from imagebuilder import build_image, sha256

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Podman:
    """podman on a storage root of its own (vfs, no cgroups or events), so tests never touch
    the system's images; credentials go to a private auth file."""

    def __init__(self, base: Path, authfile: Path, runroot: Path) -> None:
        self.base = base
        self.authfile = authfile
        # podman refuses a runroot longer than 50 characters, which tmp_path often is.
        self.runroot = runroot
        for path in (base / "root", base / "tmp", runroot):
            path.mkdir(parents=True, exist_ok=True)

    def __call__(
        self, *args: str, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [
            require_tool("podman"),
            "--root", str(self.base / "root"),
            "--runroot", str(self.runroot),
            "--tmpdir", str(self.base / "tmp"),
            "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs",
            "--events-backend", "none",
            *args,
        ]  # fmt: skip
        env = {**os.environ, "HOME": str(self.base), "REGISTRY_AUTH_FILE": str(self.authfile)}
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=120, env=env
        )
        if check and proc.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def inspect(self, ref: str) -> dict:
        return json.loads(self("image", "inspect", ref).stdout)[0]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A directory with a short path, for podman's run roots; removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="cbpod-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def podman(tmp_path: Path, short_tmp: Path) -> Podman:
    return Podman(tmp_path / "podman-a", tmp_path / "auth.json", short_tmp / "a")


@pytest.fixture
def podman_b(tmp_path: Path, short_tmp: Path) -> Podman:
    """A second, empty storage sharing the first one's auth file: where images are pulled."""
    return Podman(tmp_path / "podman-b", tmp_path / "auth.json", short_tmp / "b")


def login(podman: Podman, registry) -> None:
    """`podman login` with the admin key, the secret on stdin."""
    key, secret = registry.credentials
    proc = podman(
        "login", "--tls-verify=false", "--username", key, "--password-stdin", registry.host,
        input=secret,
    )  # fmt: skip
    assert "Login Succeeded" in proc.stdout


def get_manifest(registry, name: str, reference: str):
    return registry.session().get(
        f"{registry.url}/v2/{name}/manifests/{reference}",
        headers={"Accept": f"{OCI_MANIFEST}, {DOCKER_MANIFEST}"},
    )


def test_login(registry, podman: Podman) -> None:
    """`podman login` accepts the admin key, refuses a wrong secret, and logout forgets it."""
    key, _ = registry.credentials
    bad = podman(
        "login", "--tls-verify=false", "-u", key, "-p", "not-the-secret", registry.host,
        check=False,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "invalid username/password" in bad.stderr
    assert not podman.authfile.exists() or registry.host not in podman.authfile.read_text()

    login(podman, registry)
    auths = json.loads(podman.authfile.read_text())["auths"]
    assert registry.host in auths

    podman("logout", registry.host)
    assert registry.host not in json.loads(podman.authfile.read_text())["auths"]


def test_push_pull_roundtrip(
    registry, podman: Podman, podman_b: Podman, tmp_path: Path, short_tmp: Path
) -> None:
    """An image pulled into podman from an OCI layout, tagged and pushed after `podman login`,
    comes back into an empty storage with the same image ID and the digest podman pushed."""
    image = build_image(tmp_path / "layout", [4096, 20_000])
    image_id = sha256(image.config).split(":")[1]
    login(podman, registry)
    podman("pull", f"oci:{image.layout}:latest")
    name = unique("podman/app")
    ref = f"{registry.host}/{name}:1.0"
    podman("tag", image_id, ref)
    digest_file = tmp_path / "digest"
    podman("push", "--tls-verify=false", "--digestfile", str(digest_file), ref)
    pushed = digest_file.read_text().strip()

    response = get_manifest(registry, name, "1.0")
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == pushed
    assert sha256(response.content) == pushed
    manifest = response.json()
    assert manifest["config"]["digest"] == sha256(image.config)
    assert len(manifest["layers"]) == 2
    config = registry.session().get(f"{registry.url}/v2/{name}/blobs/{sha256(image.config)}")
    assert config.content == image.config

    podman_b("pull", "--tls-verify=false", ref)
    pulled = podman_b.inspect(ref)
    assert pulled["Id"] == image_id == podman.inspect(ref)["Id"]
    assert pulled["Digest"] == pushed
    assert f"{registry.host}/{name}@{pushed}" in pulled["RepoDigests"]
    assert pulled["Architecture"] == "amd64"
    assert pulled["RootFS"]["Layers"] == json.loads(image.config)["rootfs"]["diff_ids"]

    # And by digest, into yet another storage.
    podman_c = Podman(tmp_path / "podman-c", podman.authfile, short_tmp / "c")
    podman_c("pull", "--tls-verify=false", f"{registry.host}/{name}@{pushed}")
    assert podman_c.inspect(f"{registry.host}/{name}@{pushed}")["Id"] == image_id


def test_load_and_push_docker_format(
    registry, podman: Podman, podman_b: Podman, tmp_path: Path
) -> None:
    """`podman load` of an OCI archive, pushed as Docker schema 2 (`--format v2s2`): the
    registry serves a Docker manifest and podman pulls the same image back."""
    image = build_image(tmp_path / "layout", [8192])
    image_id = sha256(image.config).split(":")[1]
    archive = tmp_path / "image.tar"
    with tarfile.open(archive, "w") as tar:
        for path in sorted(image.layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(image.layout)), recursive=False)
    loaded = podman("load", "-i", str(archive))
    assert "Loaded image" in loaded.stdout
    assert podman.inspect(image_id)["Id"] == image_id

    login(podman, registry)
    name = unique("podman/docker")
    ref = f"{registry.host}/{name}:v2s2"
    podman("tag", image_id, ref)
    podman("push", "--tls-verify=false", "--format", "v2s2", ref)

    response = get_manifest(registry, name, "v2s2")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.json()["mediaType"] == DOCKER_MANIFEST
    assert response.json()["config"]["digest"] == sha256(image.config)

    podman_b("pull", "--tls-verify=false", ref)
    pulled = podman_b.inspect(ref)
    assert pulled["Id"] == image_id
    assert pulled["Digest"] == response.headers["Docker-Content-Digest"]


def test_pull_unknown_tag_fails(registry, podman: Podman, image) -> None:
    """Pulling a tag that was never pushed fails with the registry's `manifest unknown`."""
    login(podman, registry)
    podman("pull", f"oci:{image.layout}:latest")
    name = unique("podman/missing")
    ref = f"{registry.host}/{name}:present"
    podman("tag", sha256(image.config).split(":")[1], ref)
    podman("push", "--tls-verify=false", ref)
    proc = podman("pull", "--tls-verify=false", f"{registry.host}/{name}:absent", check=False)
    assert proc.returncode != 0
    assert "manifest unknown" in proc.stderr.lower()


def test_manifest_list_push_all(registry, podman: Podman, podman_b: Podman, tmp_path: Path) -> None:
    """`podman manifest create/add/push --all` publishes a multi-arch index whose children
    keep their digests; podman pulls the arm64 image back out of it by platform."""
    images = {arch: build_image(tmp_path / arch, [3000], arch=arch) for arch in ("amd64", "arm64")}
    login(podman, registry)
    name = unique("podman/multi")
    ref = f"{registry.host}/{name}:1.0"
    podman("manifest", "create", ref)
    for image in images.values():
        podman("manifest", "add", ref, f"oci:{image.layout}:latest")
    digest_file = tmp_path / "digest"
    podman(
        "manifest", "push", "--all", "--tls-verify=false", "--digestfile", str(digest_file),
        ref, f"docker://{ref}",
    )  # fmt: skip
    pushed = digest_file.read_text().strip()

    response = registry.session().get(
        f"{registry.url}/v2/{name}/manifests/1.0", headers={"Accept": OCI_INDEX}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Content-Digest"] == pushed == sha256(response.content)
    entries = response.json()["manifests"]
    assert {e["platform"]["architecture"]: e["digest"] for e in entries} == {
        arch: image.manifest_digest for arch, image in images.items()
    }
    for image in images.values():
        child = get_manifest(registry, name, image.manifest_digest)
        assert child.content == image.manifest

    podman_b("pull", "--tls-verify=false", "--arch", "arm64", ref)
    pulled = podman_b.inspect(ref)
    assert pulled["Id"] == sha256(images["arm64"].config).split(":")[1]
    assert pulled["Architecture"] == "arm64"
