"""A Notary Project signature verifier for the tests, written from the specifications
(signature-specification.md, signature-envelope-jws.md) with `cryptography` only, independent
of cargobay's signing code: what Notation checks before it trusts a JWS signature.

`verify(envelope, trusted_root_pem)` returns the signed payload (the target artifact's
descriptor) or raises VerificationError saying which check failed.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID

PAYLOAD_TYPE = "application/vnd.cncf.notary.payload.v1+json"
KNOWN_CRITICAL = {"io.cncf.notary.signingScheme", "io.cncf.notary.expiry"}
# alg by the signing key's curve (the spec's "Algorithm Selection" table, ECDSA rows).
ALG_FOR_CURVE = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
HASH_FOR_ALG = {"ES256": hashes.SHA256, "ES384": hashes.SHA384, "ES512": hashes.SHA512}
FORBIDDEN_EKU = {
    ExtendedKeyUsageOID.SERVER_AUTH,
    ExtendedKeyUsageOID.CLIENT_AUTH,
    ExtendedKeyUsageOID.EMAIL_PROTECTION,
    ExtendedKeyUsageOID.TIME_STAMPING,
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}


class VerificationError(Exception):
    pass


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _extension(cert: x509.Certificate, kind: type) -> x509.Extension | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _check_ca(cert: x509.Certificate) -> None:
    basic, usage = _extension(cert, x509.BasicConstraints), _extension(cert, x509.KeyUsage)
    if basic is None or not basic.critical or not basic.value.ca:
        raise VerificationError("a CA certificate lacks a critical basicConstraints cA=true")
    if usage is None or not usage.critical or not usage.value.key_cert_sign:
        raise VerificationError("a CA certificate lacks a critical keyUsage keyCertSign")


def _check_leaf(cert: x509.Certificate) -> None:
    basic = _extension(cert, x509.BasicConstraints)
    if basic is not None and basic.value.ca:
        raise VerificationError("the signing certificate is a CA")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.critical or not usage.value.digital_signature:
        raise VerificationError("the signing certificate lacks a critical digitalSignature usage")
    if usage.value.key_cert_sign or usage.value.key_encipherment or usage.value.crl_sign:
        raise VerificationError("the signing certificate has a forbidden key usage")
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is not None and set(eku.value) & FORBIDDEN_EKU:
        raise VerificationError("the signing certificate has a forbidden extended key usage")


def _check_chain(chain: list[x509.Certificate], root_pem: bytes, at: dt.datetime) -> None:
    trusted = x509.load_pem_x509_certificate(root_pem)
    root = chain[-1]
    if root.public_bytes(serialization.Encoding.DER) != trusted.public_bytes(
        serialization.Encoding.DER
    ):
        raise VerificationError("the chain does not end in the trusted root")
    try:
        root.verify_directly_issued_by(root)
        for cert, issuer in itertools.pairwise(chain):
            cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError) as exc:
        raise VerificationError(f"the certificate chain does not verify: {exc}") from None
    for cert in chain[1:]:
        _check_ca(cert)
    _check_leaf(chain[0])
    now = dt.datetime.now(dt.UTC)
    for cert in chain:
        for moment in (at, now):
            if not cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc:
                raise VerificationError("a certificate is not valid at signing or verification")


def verify(envelope: bytes, root_pem: bytes) -> dict[str, Any]:
    """The payload of a valid Notary Project JWS signature trusted through `root_pem`."""
    document = json.loads(envelope)
    if set(document) != {"payload", "protected", "header", "signature"}:
        raise VerificationError(f"not a flattened JWS JSON envelope: {sorted(document)}")
    protected = json.loads(_unb64url(document["protected"]))
    if protected.get("cty") != PAYLOAD_TYPE:
        raise VerificationError("cty is not the Notary payload type")
    if protected.get("io.cncf.notary.signingScheme") != "notary.x509":
        raise VerificationError("the signing scheme is not notary.x509")
    critical = protected.get("crit")
    if not isinstance(critical, list) or "io.cncf.notary.signingScheme" not in critical:
        raise VerificationError("crit must list io.cncf.notary.signingScheme")
    if set(critical) - KNOWN_CRITICAL:
        raise VerificationError(f"unknown critical headers: {set(critical) - KNOWN_CRITICAL}")
    signing_time = dt.datetime.strptime(
        protected["io.cncf.notary.signingTime"], "%Y-%m-%dT%H:%M:%SZ"
    ).replace(tzinfo=dt.UTC)
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in document["header"]["x5c"]]
    if not chain:
        raise VerificationError("x5c is empty")
    _check_chain(chain, root_pem, signing_time)
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("the signing key is not an ECDSA key")
    alg = ALG_FOR_CURVE[key.curve.name]
    if protected.get("alg") != alg:
        raise VerificationError(f"alg {protected.get('alg')} does not match the key ({alg})")
    raw = _unb64url(document["signature"])
    half = len(raw) // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
    signing_input = f"{document['protected']}.{document['payload']}".encode("ascii")
    try:
        key.verify(der, signing_input, ec.ECDSA(HASH_FOR_ALG[alg]()))
    except InvalidSignature:
        raise VerificationError("the signature does not verify") from None
    return json.loads(_unb64url(document["payload"]))


def tampered(envelope: bytes, digest: str) -> bytes:
    """The same envelope with the payload's target digest replaced (signature kept)."""
    document = json.loads(envelope)
    payload = json.loads(_unb64url(document["payload"]))
    payload["targetArtifact"]["digest"] = digest
    encoded = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return json.dumps({**document, "payload": encoded}).encode()
