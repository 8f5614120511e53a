"""The Notary Project signature of an image: the payload, the JWS envelope (flattened JWS JSON
serialization, `application/jose+json`) and the signature manifest that attaches it to the
image as an OCI referrer. Pure functions, no I/O; the signing itself happens elsewhere (KMS).

Facts from the Notary Project specifications (signature-specification.md,
signature-envelope-jws.md):
- payload: `{"targetArtifact": <descriptor of the signed manifest>}`, media type
  `application/vnd.cncf.notary.payload.v1+json` (the protected `cty`);
- protected header: `alg` (ES384 for a P-384 key), `cty`, `io.cncf.notary.signingScheme`
  (`notary.x509`, critical), `io.cncf.notary.signingTime` (RFC 3339, no fractions), `crit`;
- unprotected header: `x5c` (base64 DER certificates, signing certificate first, root last)
  and `io.cncf.notary.signingAgent`;
- signature: over `BASE64URL(protected) '.' BASE64URL(payload)`; ECDSA as JWS encodes it
  (RFC 7518: r || s, each as long as the curve's order);
- manifest: an OCI image manifest with config media type `application/vnd.cncf.notary.signature`,
  one layer (the envelope), the image as `subject`, and the certificates' SHA-256 thumbprints
  in the `io.cncf.notary.x509chain.thumbprint#S256` annotation.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cargobay.oci.manifest import OCI_MANIFEST

JOSE = "application/jose+json"
PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
SIGNATURE_TYPE = "application/vnd.cncf.notary.signature"
SCHEME = "notary.x509"
ALG = "ES384"
COORDINATE_BYTES = 48  # P-384
SIGNING_AGENT = "cargobay"
THUMBPRINTS = "io.cncf.notary.x509chain.thumbprint#S256"
PROFILE_ANNOTATION = "dev.cargobay.signing-profile"  # marks the signatures cargobay attaches
EMPTY_CONFIG = b"{}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def payload(media_type: str, digest: str, size: int) -> bytes:
    """The signed payload: the descriptor of the manifest being signed."""
    return _compact({"targetArtifact": {"mediaType": media_type, "digest": digest, "size": size}})


def protected_header(signing_time: dt.datetime) -> bytes:
    return _compact(
        {
            "alg": ALG,
            "cty": PAYLOAD_TYPE,
            "io.cncf.notary.signingScheme": SCHEME,
            "io.cncf.notary.signingTime": rfc3339(signing_time),
            "crit": ["io.cncf.notary.signingScheme"],
        }
    )


@dataclass(frozen=True, slots=True)
class Unsigned:
    """An envelope waiting for its signature: what to sign, and what it is made of."""

    protected: str
    payload: str

    @property
    def signing_input(self) -> bytes:
        return f"{self.protected}.{self.payload}".encode("ascii")


def prepare(payload_bytes: bytes, signing_time: dt.datetime) -> Unsigned:
    return Unsigned(b64url(protected_header(signing_time)), b64url(payload_bytes))


def jws_signature(der_signature: bytes) -> bytes:
    """An ECDSA signature as KMS returns it (DER) in JWS's form: r || s, fixed width."""
    # Loaded here: the task runner lives in every worker, and `cryptography` costs memory in
    # workers that only serve `/v2/` (tests/e2e/test_worker_imports.py).
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(der_signature)
    return r.to_bytes(COORDINATE_BYTES, "big") + s.to_bytes(COORDINATE_BYTES, "big")


def assemble(unsigned: Unsigned, der_signature: bytes, chain_der: list[bytes]) -> bytes:
    """The envelope: flattened JWS JSON serialization, nothing else at the top level."""
    return _compact(
        {
            "payload": unsigned.payload,
            "protected": unsigned.protected,
            "header": {
                "x5c": [base64.b64encode(cert).decode() for cert in chain_der],
                "io.cncf.notary.signingAgent": SIGNING_AGENT,
            },
            "signature": b64url(jws_signature(der_signature)),
        }
    )


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def signature_manifest(
    envelope: bytes,
    subject: dict[str, Any],
    thumbprints: list[str],
    profile_arn: str,
    signing_time: dt.datetime,
) -> bytes:
    """The OCI manifest that attaches `envelope` to the image `subject` describes."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": SIGNATURE_TYPE,
            "digest": digest_of(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [{"mediaType": JOSE, "digest": digest_of(envelope), "size": len(envelope)}],
        "subject": subject,
        "annotations": {
            THUMBPRINTS: json.dumps(thumbprints, separators=(",", ":")),
            "org.opencontainers.image.created": rfc3339(signing_time),
            PROFILE_ANNOTATION: profile_arn,
        },
    }
    return _compact(manifest)
