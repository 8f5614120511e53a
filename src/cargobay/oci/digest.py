"""Content digests (`algorithm:hex`) as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from cargobay.oci.errors import DigestInvalid, DigestUnsupported

# Registered algorithms and the exact length of their hex encoding.
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}

# The grammar from the image spec: algorithm-component([+._-]component)*:encoded
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HEX_RE = re.compile(r"^[a-f0-9]+$")
# A registered algorithm and its exact lowercase hex: what passes the grammar and both checks
# below, in one unanchored pattern (fullmatch; `$` would also match before a newline).
_EXACT = re.compile("|".join(f"{name}:[a-f0-9]{{{size}}}" for name, size in ALGORITHMS.items()))


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def parse_digest(value: str) -> Digest:
    """Parse and validate a digest; unknown algorithms are UNSUPPORTED, bad form DIGEST_INVALID."""
    check_digest(value)
    algorithm, _, encoded = value.partition(":")
    return Digest(algorithm, encoded)


def check_digest(value: str) -> None:
    """`parse_digest`'s checks and errors, without building the `Digest` (for a caller that
    only validates)."""
    if _EXACT.fullmatch(value):  # every digest a client sends: one pattern, not two
        return
    if not value or not _DIGEST_RE.fullmatch(value):
        raise DigestInvalid("invalid digest format", detail={"digest": value})
    algorithm, _, encoded = value.partition(":")
    if algorithm not in ALGORITHMS:
        raise DigestUnsupported(
            f"digest algorithm {algorithm!r} is not supported", detail={"digest": value}
        )
    if len(encoded) != ALGORITHMS[algorithm] or not _HEX_RE.fullmatch(encoded):
        raise DigestInvalid("invalid digest encoding", detail={"digest": value})


def is_digest(reference: str) -> bool:
    """True when a manifest reference is a digest rather than a tag (tags cannot hold ':')."""
    return ":" in reference


def compute(data: bytes, algorithm: str = "sha256") -> str:
    if algorithm == "sha256":  # hashlib.new looks the name up on every call
        return "sha256:" + hashlib.sha256(data).hexdigest()
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
