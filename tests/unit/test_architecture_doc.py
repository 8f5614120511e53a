"""docs/architecture.md's table of operations is the authorization table, rendered: this test
fails when they differ, and prints the table to paste between the markers."""

from __future__ import annotations

import importlib
from pathlib import Path

from cargobay.awsjson import door
from cargobay.iam import permissions

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
BEGIN, END = "<!-- operations:begin -->", "<!-- operations:end -->"

V2_PATHS = {
    "base": "/v2/",
    "catalog": "/v2/_catalog",
    "tags": "/v2/<name>/tags/list",
    "manifest": "/v2/<name>/manifests/<reference>",
    "blob": "/v2/<name>/blobs/<digest>",
    "uploads": "/v2/<name>/blobs/uploads/",
    "upload": "/v2/<name>/blobs/uploads/<id>",
    "referrers": "/v2/<name>/referrers/<digest>",
}


def _row(door: str, operation: str, permission: permissions.Permission) -> str:
    actions = ", ".join(f"`{a}`" for a in permission.actions) or "(authentication only)"
    return f"| {door} | {operation} | {actions} | {permission.resource} |"


def render() -> str:
    lines = ["| Door | Operation | IAM action | Resource |", "| --- | --- | --- | --- |"]
    for (kind, method), permission in permissions.V2_ROUTES.items():
        lines.append(_row("`/v2/`", f"`{method} {V2_PATHS[kind]}`", permission))
    for operation, permission in sorted(permissions.ECR_OPERATIONS.items()):
        lines.append(_row("ECR", operation, permission))
    for operation, permission in sorted(permissions.IAM_OPERATIONS.items()):
        lines.append(_row("IAM", operation, permission))
    for kind, permission in permissions.PULL_THROUGH.items():
        lines.append(_row("`/v2/`", f"pull through a cache rule ({kind})", permission))
    # The services of the generic AWS JSON door: each checks its own table in `authorize`.
    services = [importlib.import_module(module).SERVICE for module in door.SERVICES.values()]
    for service in sorted(services, key=lambda s: s.signing_name):
        for name, operation in sorted(service.operations.items()):
            door_name = f"AWS JSON (`{service.signing_name}`)"
            lines.append(f"| {door_name} | {name} | `{operation.action}` | {operation.resource} |")
    for operation, permission in sorted(permissions.KMS_OPERATIONS.items()):
        lines.append(_row("KMS", operation, permission))
    for operation, permission in sorted(permissions.SIGNER_OPERATIONS.items()):
        lines.append(_row("Signer (REST JSON)", operation, permission))
    return "\n".join(lines)


def test_the_documented_operations_are_the_authorization_table() -> None:
    text = DOC.read_text()
    documented = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert documented == render(), f"docs/architecture.md should list:\n{render()}"


if __name__ == "__main__":
    print(render())
