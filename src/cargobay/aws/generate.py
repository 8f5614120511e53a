"""Generate the compact input-shape tables in `cargobay/aws/models/<service>.json`.

`python -m cargobay.aws.generate [service ...]` reads botocore's
`data/<service>/<version>/service-2.json(.gz)` and keeps only what input validation needs:
each operation's input shape and, recursively, every shape it reaches, with the constraints
(required, type, enum, min, max, pattern, sensitive, locations). Serving processes read these
tables and never import botocore (each module counts in every worker's memory).
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Any

SERVICES = ("ecr", "iam", "kms", "secretsmanager", "cloudtrail", "signer")
MODELS = Path(__file__).with_name("models")
# Shape keys kept as they are; everything else (documentation, examples...) is dropped.
_SHAPE_KEYS = ("type", "enum", "min", "max", "pattern", "sensitive", "flattened", "timestampFormat")
_MEMBER_KEYS = ("location", "locationName", "flattened")


def _botocore_data() -> Path:
    import botocore  # only the generator and the tests load botocore

    return Path(botocore.__file__).parent / "data"


def load_model(service: str) -> tuple[str, dict[str, Any]]:
    """The newest `service-2` model botocore ships for `service`, and its API version."""
    versions = sorted(p for p in (_botocore_data() / service).iterdir() if p.is_dir())
    if not versions:
        raise SystemExit(f"botocore has no model for {service!r}")
    folder = versions[-1]
    plain = folder / "service-2.json"
    if plain.exists():
        text = plain.read_text()
    else:
        text = gzip.decompress((folder / "service-2.json.gz").read_bytes()).decode()
    return folder.name, json.loads(text)


def _compact_shape(shape: dict[str, Any]) -> dict[str, Any]:
    out = {key: shape[key] for key in _SHAPE_KEYS if key in shape}
    if shape["type"] == "structure":
        out["members"] = {}
        for name, member in shape.get("members", {}).items():
            extra = {key: member[key] for key in _MEMBER_KEYS if key in member}
            out["members"][name] = {"shape": member["shape"], **extra} if extra else member["shape"]
        if shape.get("required"):
            out["required"] = list(shape["required"])
    for key in ("member", "key", "value"):
        if key in shape:
            ref = shape[key]
            extra = {k: ref[k] for k in ("locationName",) if k in ref}
            out[key] = {"shape": ref["shape"], **extra} if extra else ref["shape"]
    return out


def _children(shape: dict[str, Any]) -> list[str]:
    names = [member["shape"] for member in shape.get("members", {}).values()]
    names += [shape[key]["shape"] for key in ("member", "key", "value") if key in shape]
    return names


def compact(service: str, version: str, model: dict[str, Any]) -> dict[str, Any]:
    """The table for one service: operations -> input shape name, and the shapes they reach."""
    shapes = model["shapes"]
    operations: dict[str, str | None] = {}
    keep: dict[str, dict[str, Any]] = {}
    todo: list[str] = []
    for name, operation in sorted(model["operations"].items()):
        root = operation.get("input", {}).get("shape")
        operations[name] = root
        if root:
            todo.append(root)
    while todo:  # iterative: models may be recursive
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = _compact_shape(shapes[name])
        todo.extend(_children(shapes[name]))
    return {
        "service": service,
        "apiVersion": version,
        "protocol": model["metadata"]["protocol"],
        "operations": operations,
        "shapes": dict(sorted(keep.items())),
    }


def render(table: dict[str, Any]) -> str:
    return json.dumps(table, sort_keys=True, indent=1) + "\n"


def generate(service: str) -> str:
    version, model = load_model(service)
    return render(compact(service, version, model))


def main(argv: list[str]) -> int:
    for service in argv or SERVICES:
        path = MODELS / f"{service}.json"
        path.write_text(generate(service))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
