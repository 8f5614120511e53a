"""Software bills of materials from an inventory: CycloneDX 1.5 and SPDX 2.3, both JSON, each
package identified by its package URL (purl)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from importlib import metadata
from typing import Any
from urllib.parse import quote

from cargobay.scanning.model import APK, DEB, GOLANG, MAVEN, NPM, PYPI, RPM, Inventory, Package
from cargobay.vulndb.osversions import split_evr

CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
SPDX_MEDIA_TYPE = "application/spdx+json"
_NAMESPACE = uuid.UUID("5a1c0b7e-6f1e-4c35-9d7b-0c8a7b5e2f10")  # cargobay's SBOM serials


def _enc(text: str) -> str:
    return quote(text, safe=".-_~")


def _qualifiers(values: dict[str, str | None]) -> str:
    pairs = [f"{k}={_enc(v)}" for k, v in sorted(values.items()) if v]
    return "?" + "&".join(pairs) if pairs else ""


def purl(package: Package, inventory: Inventory) -> str:
    """The package URL of a package (purl-spec's per-type rules)."""
    os_info = inventory.os
    distro = f"{os_info.id}-{os_info.version_id}" if os_info and os_info.version_id else None
    if package.type in (DEB, APK):
        namespace = os_info.id if os_info else ("debian" if package.type == DEB else "alpine")
        qualifiers = {"arch": package.arch, "distro": distro}
        if package.source_name and package.source_name != package.name:
            qualifiers["upstream"] = package.source_name
        return (
            f"pkg:{package.type}/{_enc(namespace)}/{_enc(package.name)}@{_enc(package.version)}"
            + _qualifiers(qualifiers)
        )
    if package.type == RPM:
        epoch, version, release = split_evr(package.version)
        full = f"{version}-{release}" if release else version
        namespace = os_info.id if os_info else "redhat"
        return f"pkg:rpm/{_enc(namespace)}/{_enc(package.name)}@{_enc(full)}" + _qualifiers(
            {"arch": package.arch, "epoch": str(epoch) if epoch else None, "distro": distro}
        )
    if package.type == PYPI:
        name = package.name.lower().replace("_", "-")
        return f"pkg:pypi/{_enc(name)}@{_enc(package.version)}"
    if package.type == NPM:
        scope, _, name = package.name.rpartition("/")
        path = f"{_enc(scope)}/{_enc(name)}" if scope else _enc(name)
        return f"pkg:npm/{path}@{_enc(package.version)}"
    if package.type == GOLANG:
        path = "/".join(_enc(part) for part in package.name.split("/"))
        return f"pkg:golang/{path}@{_enc(package.version)}"
    if package.type == MAVEN:
        group, _, artifact = package.name.partition(":")
        return f"pkg:maven/{_enc(group)}/{_enc(artifact)}@{_enc(package.version)}"
    return f"pkg:generic/{_enc(package.name)}@{_enc(package.version)}"


def _unique(inventory: Inventory) -> list[tuple[str, Package, list[str]]]:
    """(purl, package, paths) once per purl, in purl order."""
    by_purl: dict[str, tuple[Package, list[str]]] = {}
    for package in inventory.packages:
        entry = by_purl.setdefault(purl(package, inventory), (package, []))
        if package.path and package.path not in entry[1]:
            entry[1].append(package.path)
    return [(p, pkg, paths) for p, (pkg, paths) in sorted(by_purl.items())]


def _tool_version() -> str:
    try:
        return metadata.version("cargobay")
    except metadata.PackageNotFoundError:
        return "0"


def _timestamp(now: float | None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))


def _properties(package: Package, paths: Iterable[str]) -> list[dict[str, str]]:
    props = [{"name": "cargobay:package:path", "value": path} for path in paths]
    if package.source_name:
        props.append({"name": "cargobay:package:source_name", "value": package.source_name})
    if package.source_version and package.source_version != package.version:
        props.append({"name": "cargobay:package:source_version", "value": package.source_version})
    return props


def cyclonedx(
    inventory: Inventory, image_digest: str, image_name: str = "", now: float | None = None
) -> dict[str, Any]:
    """A CycloneDX 1.5 BOM; the same inventory and image always give the same serial number."""
    image_ref = f"image:{image_digest}"
    components: list[dict[str, Any]] = []
    if inventory.os is not None:
        components.append(
            {
                "type": "operating-system",
                "bom-ref": f"os:{inventory.os.id}-{inventory.os.version_id}",
                "name": inventory.os.id,
                "version": inventory.os.version_id or None,
                "description": inventory.os.pretty_name or None,
            }
        )
    for ref, package, paths in _unique(inventory):
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": package.name,
            "version": package.version,
            "purl": ref,
        }
        if package.type == MAVEN:
            component["group"], _, component["name"] = package.name.partition(":")
        elif package.type == NPM and package.name.startswith("@"):
            component["group"], _, component["name"] = package.name.partition("/")
        properties = _properties(package, paths)
        if properties:
            component["properties"] = properties
        components.append(component)
    components = [{k: v for k, v in c.items() if v is not None} for c in components]
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NAMESPACE, image_digest)}",
        "version": 1,
        "metadata": {
            "timestamp": _timestamp(now),
            "tools": {
                "components": [
                    {"type": "application", "name": "cargobay", "version": _tool_version()}
                ]
            },
            "component": {
                "type": "container",
                "bom-ref": image_ref,
                "name": image_name or image_digest,
                "version": image_digest,
            },
        },
        "components": components,
        "dependencies": [{"ref": image_ref, "dependsOn": [c["bom-ref"] for c in components]}],
    }


def spdx(
    inventory: Inventory, image_digest: str, image_name: str = "", now: float | None = None
) -> dict[str, Any]:
    """An SPDX 2.3 document: the image as a CONTAINER package that CONTAINS each package."""
    packages: list[dict[str, Any]] = [
        {
            "SPDXID": "SPDXRef-Image",
            "name": image_name or image_digest,
            "versionInfo": image_digest,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    if inventory.os is not None:
        packages.append(
            {
                "SPDXID": "SPDXRef-OperatingSystem",
                "name": inventory.os.id,
                "versionInfo": inventory.os.version_id or "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "primaryPackagePurpose": "OPERATING-SYSTEM",
            }
        )
    for number, (ref, package, _paths) in enumerate(_unique(inventory), 1):
        packages.append(
            {
                "SPDXID": f"SPDXRef-Package-{number}",
                "name": package.name,
                "versionInfo": package.version,
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "primaryPackagePurpose": "LIBRARY",
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": ref,
                    }
                ],
            }
        )
    relationships = [
        {
            "spdxElementId": "SPDXRef-DOCUMENT",
            "relationshipType": "DESCRIBES",
            "relatedSpdxElement": "SPDXRef-Image",
        }
    ] + [
        {
            "spdxElementId": "SPDXRef-Image",
            "relationshipType": "CONTAINS",
            "relatedSpdxElement": p["SPDXID"],
        }
        for p in packages[1:]
    ]
    serial = uuid.uuid5(_NAMESPACE, image_digest)
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image_name or image_digest,
        "documentNamespace": f"https://cargobay.invalid/spdx/{image_digest}/{serial}",
        "creationInfo": {
            "created": _timestamp(now),
            "creators": [f"Tool: cargobay-{_tool_version()}"],
        },
        "packages": packages,
        "relationships": relationships,
    }


def encode(document: dict[str, Any]) -> bytes:
    """Canonical bytes (sorted keys, no whitespace) so an unchanged SBOM has the same digest."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
