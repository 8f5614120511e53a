"""The docker CLI as a client: `docker login` with an access key and with
`aws ecr get-login-password`, push, pull, a multi-arch list made with `docker manifest`, and a
delete through the ECR API that docker then sees.

Debian's `dockerd` runs here as a private daemon (its own data root, exec root and socket;
no iptables, no bridge, the vfs storage driver), so nothing on the machine is touched. Images
come from `docker import` of a tiny root filesystem: no network, no base image.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e.ecrhelp import aws, client, unique
from server import Server

pytestmark = pytest.mark.skipif(
    shutil.which("dockerd") is None or shutil.which("docker") is None or os.geteuid() != 0,
    reason="needs Debian's docker.io (dockerd) and root",
)


class Docker:
    """A private dockerd and a docker CLI pointed at it, with its own config directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.config = root / "config"
        self.config.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DOCKER_HOST": f"unix://{self.socket}",
            "DOCKER_CONFIG": str(self.config),
            "DOCKER_CLI_EXPERIMENTAL": "enabled",
        }

    def start(self) -> None:
        log = (self.root / "dockerd.log").open("wb")
        self.process = subprocess.Popen(
            [
                "dockerd",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=vfs",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'docker.pid'}",
                f"--host=unix://{self.socket}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.root / "dockerd.log").read_text()[-3000:])
            if self.run("version", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError("dockerd did not come up")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)

    def run(
        self, *args: str, stdin: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(
            ["docker", *args], input=stdin, capture_output=True, env=self.env, timeout=600
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args)} failed: {proc.stdout.decode()} {proc.stderr.decode()}"
            )
        return proc

    def import_image(self, ref: str, marker: str, arch: str = "amd64") -> None:
        """A one-file image whose content names `marker`, so each image is distinct."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            data = f"cargobay docker test {marker}\n".encode()
            info = tarfile.TarInfo("hello.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        self.run("import", "--platform", f"linux/{arch}", "-", ref, stdin=buffer.getvalue())


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    # A short path: the daemon's unix sockets must fit in sun_path.
    root = Path(f"/tmp/cbdocker-{os.getpid()}")
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(mode=0o700)
    daemon = Docker(root)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def _repo_digest(docker: Docker, ref: str) -> str:
    inspected = json.loads(docker.run("image", "inspect", ref).stdout)[0]
    digests = [d.partition("@")[2] for d in inspected["RepoDigests"]]
    assert digests, inspected
    return digests[0]


def test_docker_login_with_an_access_key_push_pull_and_delete(
    registry: Server, docker: Docker
) -> None:
    key, secret = registry.credentials
    # A wrong secret is refused; the right one is accepted.
    refused = docker.run(
        "login", "-u", key, "--password-stdin", registry.host, stdin=b"wrong", check=False
    )
    assert refused.returncode != 0 and b"unauthorized" in (refused.stderr + refused.stdout).lower()
    docker.run("login", "-u", key, "--password-stdin", registry.host, stdin=secret.encode())
    stored = docker.config / "config.json"
    assert stored.stat().st_mode & 0o077 == 0  # docker writes its credentials 0600

    name = unique("docker/web")
    ref = f"{registry.host}/{name}:v1"
    docker.import_image(ref, name)
    docker.run("push", ref)
    pushed_digest = _repo_digest(docker, ref)
    ecr = client(registry)
    images = ecr.describe_images(repositoryName=name)["imageDetails"]
    assert [(i["imageDigest"], i["imageTags"]) for i in images] == [(pushed_digest, ["v1"])]

    docker.run("rmi", ref)
    docker.run("pull", ref)
    assert _repo_digest(docker, ref) == pushed_digest
    content = docker.run("image", "save", ref).stdout
    assert len(content) > 0

    # Deleted through the API, the image is gone for docker too.
    ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    docker.run("rmi", ref)
    gone = docker.run("pull", ref, check=False)
    assert gone.returncode != 0
    assert b"not found" in (gone.stderr + gone.stdout).lower()
    docker.run("logout", registry.host)


def test_docker_login_with_get_login_password_and_the_repository_uri(
    registry: Server, docker: Docker
) -> None:
    """What ECR's documentation tells users to do, verbatim: the URI create-repository prints
    and the proxy endpoint get-authorization-token prints work in docker as they are."""
    name = unique("docker/uri")
    repo = aws(registry, "ecr", "create-repository", "--repository-name", name).json
    uri = repo["repository"]["repositoryUri"]
    endpoint = aws(registry, "ecr", "get-authorization-token").json["authorizationData"][0][
        "proxyEndpoint"
    ]
    password = aws(registry, "ecr", "get-login-password", output_json=False).stdout.strip()
    assert password
    docker.run("login", "--username", "AWS", "--password-stdin", endpoint, stdin=password.encode())
    docker.import_image(f"{uri}:v1", name)
    docker.run("push", f"{uri}:v1")
    digest = _repo_digest(docker, f"{uri}:v1")
    docker.run("rmi", f"{uri}:v1")
    docker.run("pull", f"{uri}@{digest}")
    listed = client(registry).list_images(repositoryName=name)["imageIds"]
    assert listed == [{"imageDigest": digest, "imageTag": "v1"}]


def test_docker_manifest_pushes_a_multi_arch_index(registry: Server, docker: Docker) -> None:
    key, secret = registry.credentials
    docker.run("login", "-u", key, "--password-stdin", registry.host, stdin=secret.encode())
    name = unique("docker/multi")
    base = f"{registry.host}/{name}"
    for arch in ("amd64", "arm64"):
        docker.import_image(f"{base}:{arch}", f"{name}-{arch}", arch)
        docker.run("push", f"{base}:{arch}")
    created = docker.run(
        "manifest",
        "create",
        "--insecure",
        f"{base}:multi",
        f"{base}:amd64",
        f"{base}:arm64",
        check=False,
    )
    if created.returncode != 0 and b"experimental" in created.stderr:
        pytest.skip("this docker CLI has no `docker manifest`")
    assert created.returncode == 0, created.stderr
    docker.run("manifest", "annotate", f"{base}:multi", f"{base}:arm64", "--arch", "arm64")
    docker.run("manifest", "push", "--insecure", f"{base}:multi")

    ecr = client(registry)
    found = ecr.batch_get_image(repositoryName=name, imageIds=[{"imageTag": "multi"}])
    index = json.loads(found["images"][0]["imageManifest"])
    platforms = sorted(m["platform"]["architecture"] for m in index["manifests"])
    assert platforms == ["amd64", "arm64"]
    assert found["images"][0]["imageManifestMediaType"] in (
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    )
    # docker resolves the list to the platform asked for, and records the list's digest.
    docker.run("rmi", f"{base}:amd64")
    docker.run("pull", "--platform", "linux/amd64", f"{base}:multi")
    inspected = json.loads(docker.run("image", "inspect", f"{base}:multi").stdout)[0]
    assert inspected["Architecture"] == "amd64"
    assert _repo_digest(docker, f"{base}:multi") == found["images"][0]["imageId"]["imageDigest"]
