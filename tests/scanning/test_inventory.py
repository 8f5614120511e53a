"""Inventories of images assembled from real package metadata."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from layerkit import Entry, LayeredImage
from pkgfixtures import (
    ALPINE_INSTALLED,
    ALPINE_OS_RELEASE,
    DPKG_STATUS,
    dist_info,
    dpkg_stanzas,
    fake_go_elf,
    jar,
    pom_properties,
    real_go_binary,
    rpmdb_sqlite,
)

from cargobay.scanning.errors import UnsupportedImage
from cargobay.scanning.model import Inventory, OSInfo, Package
from cargobay.scanning.walk import build_inventory

needs_dpkg = pytest.mark.skipif(not DPKG_STATUS.exists(), reason="no dpkg status here")


def inventory_of(image: LayeredImage) -> Inventory:
    return asyncio.run(build_inventory(image.reader(), image.manifest, image.config))


def listed(inv: Inventory, type_: str) -> list[tuple[str, str, str | None, str | None]]:
    return [
        (p.name, p.version, p.source_name, p.source_version)
        for p in inv.packages
        if p.type == type_
    ]


@needs_dpkg
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_debian_packages_from_this_machines_dpkg_status(compression: str) -> None:
    text, fields = dpkg_stanzas("cpp", "dbus", "diffutils", "libdevmapper1.02.1")
    image = LayeredImage().add(
        {
            "etc/os-release": Path("/etc/os-release").read_bytes(),
            "var/lib/dpkg/status": text.encode(),
        },
        compression,
    )
    inv = inventory_of(image)
    assert inv.os is not None and inv.os.id == "debian" and inv.os.version_id == "12"
    assert inv.architecture == "amd64"

    def source(name: str) -> tuple[str | None, str | None]:
        raw = fields[name].get("Source")
        if raw is None:
            return None, None
        src, _, ver = raw.partition(" (")
        return src, ver.rstrip(")") or fields[name]["Version"]

    assert listed(inv, "deb") == [
        (name, fields[name]["Version"], *source(name))
        for name in sorted(["cpp", "dbus", "diffutils", "libdevmapper1.02.1"])
    ]
    cpp = next(p for p in inv.packages if p.name == "cpp")
    assert cpp.source_name == "gcc-defaults" and cpp.advisory_name == "gcc-defaults"
    assert cpp.version.startswith("4:")  # an epoch the source version does not have
    assert ":" not in (cpp.source_version or "")


def test_distroless_status_d_and_not_installed_packages() -> None:
    image = LayeredImage().add(
        {
            "var/lib/dpkg/status.d/base-files": (
                b"Package: base-files\nVersion: 12.4+deb12u5\nArchitecture: amd64\n"
            ),
            "var/lib/dpkg/status.d/base-files.md5sums": b"abc  etc/debian_version\n",
            "var/lib/dpkg/status.d/libssl3": (
                b"Package: libssl3\nSource: openssl\nVersion: 3.0.11-1~deb12u2\n"
            ),
            "var/lib/dpkg/status": (
                b"Package: removed\nStatus: deinstall ok config-files\nVersion: 1.0\n"
            ),
        }
    )
    assert listed(inventory_of(image), "deb") == [
        ("base-files", "12.4+deb12u5", None, None),
        ("libssl3", "3.0.11-1~deb12u2", "openssl", "3.0.11-1~deb12u2"),
    ]


def test_alpine_apk_database_with_origins() -> None:
    image = LayeredImage().add(
        {"etc/os-release": ALPINE_OS_RELEASE, "lib/apk/db/installed": ALPINE_INSTALLED.encode()}
    )
    inv = inventory_of(image)
    assert inv.os == OSInfo(id="alpine", version_id="3.18.4", pretty_name="")
    assert listed(inv, "apk") == [
        ("busybox", "1.36.1-r5", "busybox", "1.36.1-r5"),
        ("libcrypto3", "3.1.4-r0", "openssl", "3.1.4-r0"),
        ("musl", "1.2.4-r2", "musl", "1.2.4-r2"),
        ("ssl_client", "1.36.1-r5", "busybox", "1.36.1-r5"),
    ]


def test_rpm_sqlite_database(tmp_path: Path) -> None:
    db = rpmdb_sqlite(
        tmp_path / "rpmdb.sqlite",
        [
            {1000: "bash", 1001: "5.1.8", 1002: "6.el9_1", 1022: "x86_64",
             1044: "bash-5.1.8-6.el9_1.src.rpm"},
            {1000: "openssl-libs", 1003: 1, 1001: "3.0.7", 1002: "27.el9", 1022: "x86_64",
             1044: "openssl-3.0.7-27.el9.src.rpm"},
            {1000: "gpg-pubkey", 1001: "350d275d", 1002: "6279464b"},
        ],
    )  # fmt: skip
    image = LayeredImage().add(
        {
            "usr/lib/os-release": b'ID="rocky"\nVERSION_ID="9.3"\nID_LIKE="rhel centos fedora"\n',
            "var/lib/rpm/rpmdb.sqlite": db,
        }
    )
    inv = inventory_of(image)
    assert inv.os is not None and (inv.os.id, inv.os.version_id) == ("rocky", "9.3")
    assert inv.os.id_like == ("rhel", "centos", "fedora")
    assert listed(inv, "rpm") == [
        ("bash", "5.1.8-6.el9_1", "bash", None),
        ("openssl-libs", "1:3.0.7-27.el9", "openssl", None),
    ]
    assert {p.arch for p in inv.packages} == {"x86_64"}


def test_python_npm_and_maven_packages() -> None:
    where, metadata, version = dist_info("requests")
    spring = jar(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n",
            "META-INF/maven/org.example/app/pom.properties": pom_properties(
                "org.example", "app", "1.0.0"
            ),
            "BOOT-INF/lib/log4j-core-2.14.1.jar": jar(
                {
                    "META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties": (
                        pom_properties("org.apache.logging.log4j", "log4j-core", "2.14.1")
                    )
                }
            ),
        }
    )
    image = LayeredImage().add(
        {
            where: metadata,
            "usr/lib/python3/site-packages/legacy-0.9.egg-info/PKG-INFO": (
                b"Metadata-Version: 1.0\nName: legacy\nVersion: 0.9\n"
            ),
            "app/node_modules/lodash/package.json": b'{"name":"lodash","version":"4.17.20"}',
            "app/node_modules/@babel/core/package.json": (
                b'{"name": "@babel/core", "version": "7.22.0"}'
            ),
            "app/node_modules/lodash/fp/package.json": b'{"name":"not-a-package","version":"1"}',
            "app/package.json": b'{"name":"the-app","version":"0.0.1"}',
            "app/app.jar": spring,
        },
        "zstd",
    )
    inv = inventory_of(image)
    assert listed(inv, "pypi") == [("legacy", "0.9", None, None), ("requests", version, None, None)]
    assert listed(inv, "npm") == [("@babel/core", "7.22.0", None, None),
                                  ("lodash", "4.17.20", None, None)]  # fmt: skip
    assert [(p.name, p.version, p.path) for p in inv.packages if p.type == "maven"] == [
        (
            "org.apache.logging.log4j:log4j-core",
            "2.14.1",
            "app/app.jar!/BOOT-INF/lib/log4j-core-2.14.1.jar",
        ),
        ("org.example:app", "1.0.0", "app/app.jar"),
    ]


GO_MODINFO = (
    "path\texample.com/app\n"
    "mod\texample.com/app\t(devel)\t\n"
    "dep\tgolang.org/x/text\tv0.3.7\th1:olpwvP2KacW1ZWvsR7uQhoyTYvKAupfQrRGBFM352Gk=\n"
    "dep\tgithub.com/old/yaml\tv2.2.1+incompatible\t\n"
    "=>\tgithub.com/fork/yaml\tv2.2.8+incompatible\th1:x=\n"
    "build\t-compiler=gc\n"
)


@pytest.mark.parametrize("chunk", [4096, 1024 * 1024])
def test_go_build_info_streamed_from_an_elf_binary(chunk: int) -> None:
    image = LayeredImage().add(
        {
            "usr/local/bin/app": Entry(fake_go_elf("go1.21.4", GO_MODINFO), mode=0o755),
            "usr/local/bin/plain": Entry(b"\x7fELF" + b"\0" * 4096, mode=0o755),
            "data/notexec": Entry(fake_go_elf("go1.1", GO_MODINFO), mode=0o644),
            "usr/local/bin/linked": Entry(
                fake_go_elf("go1.22.0", "mod\texample.com/linked\tv1.0.0\t\n", lead=200_000),
                mode=0o755,
            ),
        }
    )
    inv = asyncio.run(build_inventory(image.reader(chunk), image.manifest, image.config))
    assert [(p.name, p.version, p.path) for p in inv.packages] == [
        ("example.com/linked", "v1.0.0", "usr/local/bin/linked"),
        ("github.com/fork/yaml", "v2.2.8+incompatible", "usr/local/bin/app"),
        ("golang.org/x/text", "v0.3.7", "usr/local/bin/app"),
        ("stdlib", "1.21.4", "usr/local/bin/app"),
        ("stdlib", "1.22.0", "usr/local/bin/linked"),
    ]


def test_a_go_binary_built_here(tmp_path: Path) -> None:
    binary = real_go_binary(tmp_path)
    if binary is None:
        pytest.skip("go is not installed: the synthetic ELF test covers the format")
    image = LayeredImage().add({"bin/hello": Entry(binary, mode=0o755)})
    names = [p.name for p in inventory_of(image).packages]
    assert names == ["stdlib"]


def test_whiteout_deleted_packages_are_not_listed() -> None:
    image = (
        LayeredImage()
        .add(
            {
                "app/node_modules/left-pad/package.json": b'{"name":"left-pad","version":"1.0.0"}',
                "app/node_modules/lodash/package.json": b'{"name":"lodash","version":"4.17.20"}',
                "lib/apk/db/installed": ALPINE_INSTALLED.encode(),
            }
        )
        .add(
            {
                "app/node_modules/.wh.left-pad": b"",
                "lib/apk/db/installed": b"P:musl\nV:1.2.4-r3\no:musl\n",
            },
            "zstd",
        )
    )
    inv = inventory_of(image)
    assert [(p.type, p.name, p.version) for p in inv.packages] == [
        ("apk", "musl", "1.2.4-r3"),
        ("npm", "lodash", "4.17.20"),
    ]


def test_indexes_and_artifacts_are_refused() -> None:
    image = LayeredImage()
    index = {"mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    with pytest.raises(UnsupportedImage):
        asyncio.run(build_inventory(image.reader(), index, image.config))
    artifact = dict(image.manifest, config={"mediaType": "application/vnd.cncf.helm.config"})
    with pytest.raises(UnsupportedImage):
        asyncio.run(build_inventory(image.reader(), artifact, image.config))


def test_package_dataclass_source_names() -> None:
    deb = Package("deb", "libssl3", "3.0.11-1", source_name="openssl", source_version="3.0.11-1")
    assert (deb.advisory_name, deb.advisory_version) == ("openssl", "3.0.11-1")
    rpm = Package("rpm", "openssl-libs", "1:3.0.7-27.el9", source_name="openssl")
    assert (rpm.advisory_name, rpm.advisory_version) == ("openssl-libs", "1:3.0.7-27.el9")
