"""A signing profile's certificate chain: a root CA issued for the profile and a code-signing
leaf certifying the profile's KMS key, shaped as the Notary Project's certificate requirements
ask (root: basicConstraints cA critical, keyUsage keyCertSign critical; leaf: keyUsage
digitalSignature critical, extendedKeyUsage codeSigning, cA false).

The root's private key lives only for the call that issues the chain: the root signs exactly
one certificate, so there is no CA key to steal afterwards. No I/O.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION = "cargobay"
# Signatures made near a certificate's start must still fall inside its validity, whatever the
# clock skew between the node that issued it and the one that verifies.
BACKDATE = dt.timedelta(minutes=5)


def _name(common_name: str, account_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, account_id),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def issue_chain(
    profile: str, account_id: str, leaf_public_der: bytes, not_after: dt.datetime
) -> list[x509.Certificate]:
    """[leaf, root] for a profile whose signing key has the public key `leaf_public_der`
    (SubjectPublicKeyInfo DER); both valid from now until `not_after`."""
    leaf_key = serialization.load_der_public_key(leaf_public_der)
    if not isinstance(leaf_key, ec.EllipticCurvePublicKey):
        raise ValueError("the signing key must be an elliptic-curve key")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0) - BACKDATE
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = _name(f"{profile} root CA", account_id)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA384())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(profile, account_id))
        .issuer_name(root_name)
        .public_key(leaf_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski),
            critical=False,
        )
        .sign(root_key, hashes.SHA384())
    )
    return [leaf, root]


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def to_pem(chain: list[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in chain)


def from_pem(text: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(text.encode())


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def thumbprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint as the `io.cncf.notary.x509chain.thumbprint#S256` annotation
    lists it (lower-case hex, as Notation writes it)."""
    return hashlib.sha256(der(certificate)).hexdigest()
