"""skopeo against a real cargobay: push, pull, inspect, list-tags, delete, copy between
repositories and registries, Docker schema 2, multi-arch indexes and blob de-duplication."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import require_tool
from imagebuilder import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    build_image,
    build_index,
    layout_blob,
    layout_manifest_digest,
    sha256,
)
from storagehelp import (
    assert_blob_store_consistent,
    read_stored_blob,
    stored_blob_digests,
    upload_leftovers,
)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120
    )
    if check and proc.returncode != 0:
        pytest.fail(f"skopeo {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def push(registry, source: str, ref: str, *extra: str) -> None:
    skopeo(
        "copy",
        "--dest-creds",
        registry.creds_arg,
        "--dest-tls-verify=false",
        *extra,
        source,
        f"docker://{registry.host}/{ref}",
    )


def pull(registry, ref: str, dest: str, *extra: str, check: bool = True):
    return skopeo(
        "copy",
        "--src-creds",
        registry.creds_arg,
        "--src-tls-verify=false",
        *extra,
        f"docker://{registry.host}/{ref}",
        dest,
        check=check,
    )


def inspect(
    registry, ref: str, *extra: str, arch: str | None = None
) -> subprocess.CompletedProcess[str]:
    return skopeo(
        *(["--override-arch", arch] if arch else []),
        "inspect", "--creds", registry.creds_arg, "--tls-verify=false", *extra,
        f"docker://{registry.host}/{ref}",
    )  # fmt: skip


def list_tags(registry, name: str) -> dict:
    out = skopeo(
        "list-tags", "--creds", registry.creds_arg, "--tls-verify=false",
        f"docker://{registry.host}/{name}",
    ).stdout  # fmt: skip
    return json.loads(out)


def assert_pulled_identical(layout: Path, image: Image) -> None:
    """The OCI layout at `layout` holds exactly the image's manifest and blobs, byte for byte."""
    assert layout_manifest_digest(layout) == image.manifest_digest
    assert layout_blob(layout, image.manifest_digest) == image.manifest
    for digest, data in image.blobs.items():
        assert layout_blob(layout, digest) == data, digest


def test_push_pull_inspect_roundtrip(registry, image, tmp_path: Path) -> None:
    """An OCI image pushed with skopeo comes back byte-identical, and `skopeo inspect` reports
    the pushed digest, layers and platform; `--raw` returns the exact manifest bytes."""
    name = unique("skopeo/roundtrip")
    push(registry, f"oci:{image.layout}:latest", f"{name}:1.0")

    back = tmp_path / "back"
    pull(registry, f"{name}:1.0", f"oci:{back}:1.0")
    assert_pulled_identical(back, image)

    # Pull by digest too: the same bytes come back.
    by_digest = tmp_path / "by-digest"
    pull(registry, f"{name}@{image.manifest_digest}", f"oci:{by_digest}")
    assert_pulled_identical(by_digest, image)

    info = json.loads(inspect(registry, f"{name}:1.0").stdout)
    assert info["Digest"] == image.manifest_digest
    assert info["Architecture"] == "amd64"
    assert info["Os"] == "linux"
    assert info["Layers"] == [sha256(layer) for layer in image.layers]
    assert info["RepoTags"] == ["1.0"]

    raw = inspect(registry, f"{name}:1.0", "--raw").stdout.encode()
    assert raw == image.manifest
    assert sha256(raw) == image.manifest_digest

    config = inspect(registry, f"{name}:1.0", "--config", "--raw").stdout.encode()
    assert config == image.config


def test_list_tags(registry, image) -> None:
    """`skopeo list-tags` lists every pushed tag of the repository and nothing else."""
    name = unique("skopeo/tags")
    tags = ["v2", "1.0", "latest", "1.1-rc.1"]
    for tag in tags:
        push(registry, f"oci:{image.layout}:latest", f"{name}:{tag}")
    listed = list_tags(registry, name)
    assert listed["Repository"] == f"{registry.host}/{name}"
    assert sorted(listed["Tags"]) == sorted(tags)
    # The registry itself answers in lexical order.
    response = registry.session().get(f"{registry.url}/v2/{name}/tags/list")
    assert response.json() == {"name": name, "tags": sorted(tags)}


def test_list_tags_of_missing_repository_fails(registry) -> None:
    name = unique("skopeo/missing")
    proc = skopeo(
        "list-tags", "--creds", registry.creds_arg, "--tls-verify=false",
        f"docker://{registry.host}/{name}", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    # skopeo 1.9 reports only the status here; the body carries the OCI error code.
    assert "404" in proc.stderr
    response = registry.session().get(f"{registry.url}/v2/{name}/tags/list")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


def test_delete(registry, image, tmp_path: Path) -> None:
    """`skopeo delete` removes the manifest: pulling the tag afterwards fails with
    MANIFEST_UNKNOWN, the tag disappears from the tag list, other images stay."""
    name = unique("skopeo/delete")
    other = build_image(tmp_path / "other", [2048])
    push(registry, f"oci:{image.layout}:latest", f"{name}:doomed")
    push(registry, f"oci:{other.layout}:latest", f"{name}:keep")
    assert sorted(list_tags(registry, name)["Tags"]) == ["doomed", "keep"]

    skopeo(
        "delete", "--creds", registry.creds_arg, "--tls-verify=false",
        f"docker://{registry.host}/{name}:doomed",
    )  # fmt: skip

    failed = pull(registry, f"{name}:doomed", f"oci:{tmp_path / 'gone'}", check=False)
    assert failed.returncode != 0
    assert "manifest unknown" in failed.stderr.lower()
    failed = pull(
        registry, f"{name}@{image.manifest_digest}", f"oci:{tmp_path / 'gone2'}", check=False
    )
    assert failed.returncode != 0
    assert "manifest unknown" in failed.stderr.lower()

    response = registry.session().head(
        f"{registry.url}/v2/{name}/manifests/{image.manifest_digest}"
    )
    assert response.status_code == 404
    assert list_tags(registry, name)["Tags"] == ["keep"]

    kept = tmp_path / "kept"
    pull(registry, f"{name}:keep", f"oci:{kept}")
    assert_pulled_identical(kept, other)

    # The deleted image can be pushed again (its blobs are still there) and pulled intact.
    push(registry, f"oci:{image.layout}:latest", f"{name}:again")
    again = tmp_path / "again"
    pull(registry, f"{name}:again", f"oci:{again}")
    assert_pulled_identical(again, image)


def test_copy_between_repositories(registry, image, tmp_path: Path) -> None:
    """docker:// to docker:// within one registry keeps the manifest digest and bytes."""
    source = unique("skopeo/copy-src")
    target = unique("skopeo/copy-dst")
    push(registry, f"oci:{image.layout}:latest", f"{source}:1.0")
    skopeo(
        "copy",
        "--src-creds", registry.creds_arg, "--src-tls-verify=false",
        "--dest-creds", registry.creds_arg, "--dest-tls-verify=false",
        f"docker://{registry.host}/{source}:1.0",
        f"docker://{registry.host}/{target}:copied",
    )  # fmt: skip
    assert inspect(registry, f"{target}:copied", "--raw").stdout.encode() == image.manifest
    back = tmp_path / "back"
    pull(registry, f"{target}:copied", f"oci:{back}")
    assert_pulled_identical(back, image)
    # The source is untouched.
    assert list_tags(registry, source)["Tags"] == ["1.0"]
    assert list_tags(registry, target)["Tags"] == ["copied"]


def test_copy_between_registries(registry, fresh_registry, image, tmp_path: Path) -> None:
    """From one cargobay to another (each with its own admin key), byte-identical."""
    name = unique("skopeo/xreg")
    push(registry, f"oci:{image.layout}:latest", f"{name}:1.0")
    assert registry.credentials != fresh_registry.credentials
    skopeo(
        "copy",
        "--src-creds", registry.creds_arg, "--src-tls-verify=false",
        "--dest-creds", fresh_registry.creds_arg, "--dest-tls-verify=false",
        f"docker://{registry.host}/{name}:1.0",
        f"docker://{fresh_registry.host}/mirror/{name}:1.0",
    )  # fmt: skip
    back = tmp_path / "back"
    pull(fresh_registry, f"mirror/{name}:1.0", f"oci:{back}")
    assert_pulled_identical(back, image)
    for digest, data in image.blobs.items():
        assert read_stored_blob(fresh_registry, digest) == data


def test_push_docker_schema2(registry, image, tmp_path: Path) -> None:
    """`--format v2s2` converts to a Docker schema 2 manifest; the registry stores and serves
    it as such, with the same config and layer blobs."""
    name = unique("skopeo/v2s2")
    push(registry, f"oci:{image.layout}:latest", f"{name}:docker", "--format", "v2s2")
    push(registry, f"oci:{image.layout}:latest", f"{name}:oci", "--format", "oci")

    raw = inspect(registry, f"{name}:docker", "--raw").stdout.encode()
    manifest = json.loads(raw)
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["mediaType"] == DOCKER_CONFIG
    assert manifest["config"]["digest"] == sha256(image.config)
    assert [layer["mediaType"] for layer in manifest["layers"]] == [DOCKER_LAYER] * 2
    assert [layer["digest"] for layer in manifest["layers"]] == [
        sha256(layer) for layer in image.layers
    ]
    info = json.loads(inspect(registry, f"{name}:docker").stdout)
    assert info["Digest"] == sha256(raw)

    response = registry.session().get(
        f"{registry.url}/v2/{name}/manifests/docker", headers={"Accept": DOCKER_MANIFEST}
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"] == DOCKER_MANIFEST
    assert response.headers["Docker-Content-Digest"] == sha256(raw)
    assert response.content == raw

    # The OCI tag of the same image keeps its OCI manifest.
    assert inspect(registry, f"{name}:oci", "--raw").stdout.encode() == image.manifest

    # A `dir:` pull keeps the manifest exactly as stored, plus every blob.
    back = tmp_path / "dir"
    pull(registry, f"{name}:docker", f"dir:{back}")
    assert (back / "manifest.json").read_bytes() == raw
    for digest, data in image.blobs.items():
        assert (back / digest.split(":")[1]).read_bytes() == data


def test_multi_arch_index(registry, tmp_path: Path) -> None:
    """`skopeo copy --all` pushes an OCI index and both platform images; the index, the child
    manifests and every blob come back byte-identical, and platform selection works."""
    index = build_index(tmp_path / "multi", ["amd64", "arm64"], [2048, 1500])
    name = unique("skopeo/multi")
    push(registry, f"oci:{index.layout}:latest", f"{name}:1.0", "--all")

    raw = inspect(registry, f"{name}:1.0", "--raw").stdout.encode()
    assert raw == index.content
    assert json.loads(raw)["mediaType"] == OCI_INDEX
    for arch, child in index.images.items():
        child_raw = inspect(registry, f"{name}@{child.manifest_digest}", "--raw").stdout
        assert child_raw.encode() == child.manifest
        info = json.loads(inspect(registry, f"{name}:1.0", arch=arch).stdout)
        # skopeo reports the index's digest and the selected platform image's contents.
        assert info["Digest"] == index.digest
        assert info["Architecture"] == arch
        assert info["Layers"] == [sha256(layer) for layer in child.layers]
    response = registry.session().get(
        f"{registry.url}/v2/{name}/manifests/1.0",
        headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"},
    )
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Content-Digest"] == index.digest

    back = tmp_path / "back"
    pull(registry, f"{name}:1.0", f"oci:{back}:1.0", "--all")
    assert layout_manifest_digest(back) == index.digest
    for digest, data in index.blobs.items():
        assert layout_blob(back, digest) == data, digest

    # Without --all only the selected platform's image is copied.
    single = tmp_path / "single"
    skopeo(
        "--override-arch", "arm64", "copy", "--src-creds", registry.creds_arg,
        "--src-tls-verify=false", f"docker://{registry.host}/{name}:1.0", f"oci:{single}",
    )  # fmt: skip
    arm = index.images["arm64"]
    assert layout_manifest_digest(single) == arm.manifest_digest
    assert layout_blob(single, arm.manifest_digest) == arm.manifest


def test_multi_component_name(registry, image, tmp_path: Path) -> None:
    """Repository names with several path components work for push, tags, pull and catalog."""
    name = f"{unique('team')}/app/web"
    push(registry, f"oci:{image.layout}:latest", f"{name}:1.0")
    assert list_tags(registry, name)["Tags"] == ["1.0"]
    back = tmp_path / "back"
    pull(registry, f"{name}:1.0", f"oci:{back}")
    assert_pulled_identical(back, image)
    # A prefix of the name is not a repository of its own.
    parent = name.rsplit("/", 1)[0]
    response = registry.session().get(f"{registry.url}/v2/{parent}/tags/list")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    catalog = registry.session().get(f"{registry.url}/v2/_catalog").json()["repositories"]
    assert name in catalog
    assert parent not in catalog


def test_same_layers_in_two_repositories_stored_once(fresh_registry, image, tmp_path) -> None:
    """Pushing one image to two repositories stores each blob once, yet both serve it."""
    push(fresh_registry, f"oci:{image.layout}:latest", "first/app:1.0")
    push(fresh_registry, f"oci:{image.layout}:latest", "second/app:1.0")
    assert stored_blob_digests(fresh_registry) == sorted(image.blobs)
    assert_blob_store_consistent(fresh_registry)  # each hashes to its name
    assert upload_leftovers(fresh_registry) == []

    session = fresh_registry.session()
    for repo in ("first/app", "second/app"):
        for digest, data in image.blobs.items():
            response = session.get(f"{fresh_registry.url}/v2/{repo}/blobs/{digest}")
            assert response.status_code == 200
            assert response.content == data
        back = tmp_path / repo.replace("/", "-")
        pull(fresh_registry, f"{repo}:1.0", f"oci:{back}")
        assert_pulled_identical(back, image)


def test_multi_arch_as_docker_manifest_list(registry, tmp_path: Path) -> None:
    """`skopeo copy --all --format v2s2` turns the OCI index into a Docker manifest list of
    schema 2 images; the registry serves it with that media type and the same platforms."""
    index = build_index(tmp_path / "multi", ["amd64", "arm64"], [1024])
    name = unique("skopeo/list")
    push(registry, f"oci:{index.layout}:latest", f"{name}:1.0", "--all", "--format", "v2s2")

    raw = inspect(registry, f"{name}:1.0", "--raw").stdout.encode()
    listing = json.loads(raw)
    assert listing["mediaType"] == DOCKER_MANIFEST_LIST
    assert [m["platform"]["architecture"] for m in listing["manifests"]] == ["amd64", "arm64"]
    response = registry.session().get(
        f"{registry.url}/v2/{name}/manifests/1.0", headers={"Accept": DOCKER_MANIFEST_LIST}
    )
    assert response.headers["Content-Type"] == DOCKER_MANIFEST_LIST
    assert response.headers["Docker-Content-Digest"] == sha256(raw)
    for entry, (arch, image) in zip(listing["manifests"], index.images.items(), strict=True):
        assert entry["mediaType"] == DOCKER_MANIFEST
        child = inspect(registry, f"{name}@{entry['digest']}", "--raw").stdout.encode()
        assert sha256(child) == entry["digest"]
        assert len(child) == entry["size"]
        child_manifest = json.loads(child)
        assert child_manifest["mediaType"] == DOCKER_MANIFEST
        assert child_manifest["config"]["digest"] == sha256(image.config)
        assert [layer["digest"] for layer in child_manifest["layers"]] == [
            sha256(layer) for layer in image.layers
        ]
        info = json.loads(inspect(registry, f"{name}:1.0", arch=arch).stdout)
        assert info["Architecture"] == arch


def test_concurrent_pushes_of_the_same_image(fresh_registry, tmp_path: Path) -> None:
    """Four skopeo processes push one image (multi-megabyte layers) at once, twice into each
    of two repositories: every push succeeds and each blob is stored exactly once."""
    image = build_image(tmp_path / "big", [6_000_000, 2_500_000, 10])
    procs = []
    for i in range(4):
        cmd = [
            require_tool("skopeo"), "copy", "--dest-creds", fresh_registry.creds_arg,
            "--dest-tls-verify=false", f"oci:{image.layout}:latest",
            f"docker://{fresh_registry.host}/race/r{i % 2}:latest",
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        )
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    assert stored_blob_digests(fresh_registry) == sorted(image.blobs)
    for repo in ("race/r0", "race/r1"):
        back = tmp_path / repo.replace("/", "-")
        pull(fresh_registry, f"{repo}:latest", f"oci:{back}")
        assert_pulled_identical(back, image)


def test_pushing_another_image_moves_the_tag(registry, image, tmp_path: Path) -> None:
    """Pushing a different image to an existing tag re-points the tag; the old image stays
    reachable by digest."""
    name = unique("skopeo/retag")
    newer = build_image(tmp_path / "newer", [1024])
    push(registry, f"oci:{image.layout}:latest", f"{name}:latest")
    push(registry, f"oci:{newer.layout}:latest", f"{name}:latest")
    assert inspect(registry, f"{name}:latest", "--raw").stdout.encode() == newer.manifest
    assert inspect(registry, name, "--raw").stdout.encode() == newer.manifest  # default tag
    old = inspect(registry, f"{name}@{image.manifest_digest}", "--raw").stdout.encode()
    assert old == image.manifest
    assert list_tags(registry, name)["Tags"] == ["latest"]


def test_wrong_credentials_are_refused(registry, image) -> None:
    """A push with a wrong secret fails as unauthorized and creates no repository."""
    name = unique("skopeo/denied")
    key, _ = registry.credentials
    proc = skopeo(
        "copy", "--dest-creds", f"{key}:wrong-secret", "--dest-tls-verify=false",
        f"oci:{image.layout}:latest", f"docker://{registry.host}/{name}:1.0", check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "unauthorized" in proc.stderr.lower()
    catalog = registry.session().get(f"{registry.url}/v2/_catalog").json()["repositories"]
    assert name not in catalog
