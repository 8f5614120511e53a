"""The Notary Project signature cargobay builds (signing.envelope, signing.certs), checked by
the independent verifier in tests/notaryverify.py; and the pure rules of managed signing
(which repositories a rule matches, a profile's validity)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import ExtendedKeyUsageOID

from cargobay.signing import certs, envelope
from cargobay.signing.configuration import profiles_for
from cargobay.signing.errors import ValidationException
from cargobay.signing.profiles import not_after
from notaryverify import VerificationError, tampered, verify

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32
IMAGE = "application/vnd.oci.image.manifest.v1+json"


def _signed(
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[bytes, list, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP384R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    chain = certs.issue_chain("prof", "000000000000", public, expires)
    unsigned = envelope.prepare(envelope.payload(IMAGE, DIGEST, 1234), dt.datetime.now(dt.UTC))
    # As KMS signs (DIGEST message type): ECDSA over the SHA-384 of the signing input.
    digest = hashlib.sha384(unsigned.signing_input).digest()
    der = key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA384())))
    return envelope.assemble(unsigned, der, [certs.der(c) for c in chain]), chain, key


def _root(chain: list) -> bytes:
    return certs.to_pem(chain[-1:]).encode()


def test_the_envelope_verifies_against_its_root() -> None:
    document, chain, _ = _signed()
    payload = verify(document, _root(chain))
    assert payload == {"targetArtifact": {"mediaType": IMAGE, "digest": DIGEST, "size": 1234}}
    parsed = json.loads(document)
    protected = json.loads(base64.urlsafe_b64decode(parsed["protected"] + "=="))
    assert protected["alg"] == "ES384"
    assert protected["cty"] == "application/vnd.cncf.notary.payload.v1+json"
    assert protected["crit"] == ["io.cncf.notary.signingScheme"]
    assert len(base64.urlsafe_b64decode(parsed["signature"] + "==")) == 96  # r || s


def test_a_tampered_digest_or_another_root_fails() -> None:
    document, chain, _ = _signed()
    with pytest.raises(VerificationError, match="signature does not verify"):
        verify(tampered(document, OTHER), _root(chain))
    _, other_chain, _ = _signed()
    with pytest.raises(VerificationError, match="trusted root"):
        verify(document, _root(other_chain))


def test_the_chain_meets_the_notary_certificate_requirements() -> None:
    _, chain, _ = _signed()
    leaf, root = chain
    root_basic = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert root_basic.critical and root_basic.value.ca
    root_usage = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert root_usage.critical and root_usage.value.key_cert_sign
    assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CODE_SIGNING]
    assert leaf.issuer == root.subject
    assert certs.thumbprint(leaf) == hashlib.sha256(certs.der(leaf)).hexdigest()


def test_the_signature_manifest_is_a_notary_referrer() -> None:
    document, chain, _ = _signed()
    now = dt.datetime.now(dt.UTC)
    subject = {"mediaType": IMAGE, "digest": DIGEST, "size": 1234}
    arn = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/prof"
    thumbprints = [certs.thumbprint(c) for c in chain]
    manifest = json.loads(envelope.signature_manifest(document, subject, thumbprints, arn, now))
    assert manifest["config"]["mediaType"] == "application/vnd.cncf.notary.signature"
    assert manifest["config"]["size"] == 2
    assert manifest["layers"] == [
        {
            "mediaType": "application/jose+json",
            "digest": "sha256:" + hashlib.sha256(document).hexdigest(),
            "size": len(document),
        }
    ]
    assert manifest["subject"] == subject
    annotations = manifest["annotations"]
    assert json.loads(annotations["io.cncf.notary.x509chain.thumbprint#S256"]) == thumbprints


def test_rules_match_repositories_by_wildcard() -> None:
    a = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/a"
    b = "arn:aws:signer:us-east-1:000000000000:/signing-profiles/b"
    rules = [
        {"signingProfileArn": a, "repositoryFilters": [{"filter": "team/*", "filterType": "W"}]},
        {"signingProfileArn": b, "repositoryFilters": [{"filter": "exact", "filterType": "W"}]},
        {"signingProfileArn": a},
    ]
    assert profiles_for(rules, "team/app") == [a]
    assert profiles_for(rules, "exact") == [b, a]
    assert profiles_for(rules[:2], "exactly") == []
    assert profiles_for(rules[:2], "other/team/app") == []


def test_validity_periods() -> None:
    start = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)
    assert not_after(1, "MONTHS", start) == dt.datetime(2026, 2, 28, tzinfo=dt.UTC)
    assert not_after(2, "YEARS", start).year == 2028
    assert not_after(10, "DAYS", start) == start + dt.timedelta(days=10)
    for value, kind in [(0, "DAYS"), (136, "MONTHS"), (12, "YEARS"), (5, "WEEKS")]:
        with pytest.raises(ValidationException):
            not_after(value, kind, start)
