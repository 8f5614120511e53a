"""What an inventory is made of: the OS and the packages found in an image."""

from __future__ import annotations

from dataclasses import dataclass, field

# Package types, named as in package URLs (purl), which the SBOM uses verbatim.
DEB = "deb"
APK = "apk"
RPM = "rpm"
PYPI = "pypi"
NPM = "npm"
GOLANG = "golang"
MAVEN = "maven"


@dataclass(frozen=True, slots=True)
class Package:
    type: str  # one of the constants above
    name: str  # maven: "group:artifact"; golang: the module path
    version: str  # rpm: "[epoch:]version-release"
    source_name: str | None = None  # the source package advisories name (deb, apk, rpm)
    source_version: str | None = None
    arch: str | None = None
    path: str = ""  # the file it was found in

    @property
    def advisory_name(self) -> str:
        """The name OS advisories use: the source package for deb and apk (binary packages
        built from one source share its advisories); the package itself elsewhere (OSV's
        RPM-based ecosystems name binary packages)."""
        if self.type in (DEB, APK) and self.source_name:
            return self.source_name
        return self.name

    @property
    def advisory_version(self) -> str:
        if self.type == DEB and self.source_name and self.source_version:
            return self.source_version
        return self.version


@dataclass(frozen=True, slots=True)
class OSInfo:
    id: str  # os-release ID: debian, ubuntu, alpine, rocky, ...
    version_id: str = ""
    pretty_name: str = ""
    id_like: tuple[str, ...] = ()


@dataclass(slots=True)
class FileResult:
    """What one file in a layer contributed (replaced or deleted by later layers)."""

    packages: list[Package] = field(default_factory=list)
    os: OSInfo | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Inventory:
    os: OSInfo | None
    packages: list[Package]
    notes: list[str] = field(default_factory=list)  # what was skipped, and why
    architecture: str = ""
