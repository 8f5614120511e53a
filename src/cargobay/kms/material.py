"""Key material and what is done with it: generation, sealing under the deployment key, the
self-describing ciphertext blob of Encrypt, and ECDSA signatures. No I/O.

Ciphertext blob (opaque to callers, like AWS's):

    0x01 | key id (36 ASCII bytes) | material version u32 | nonce 12B | AES-256-GCM ct || tag

The associated data binds the blob's own header and the encryption context (canonical JSON),
so a blob decrypts only under the key and material version it names, and only with the same
context.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cargobay.iam.secrets import SecretBox
from cargobay.kms.errors import InvalidCiphertextException, ValidationException

BLOB_VERSION = 1
_BLOB_HEADER = struct.Struct(">B36sI12s")
_AAD_LABEL = b"cargobay-kms-ciphertext/1\x00"
_HASHES = {
    "ECDSA_SHA_256": hashes.SHA256,
    "ECDSA_SHA_384": hashes.SHA384,
    "ECDSA_SHA_512": hashes.SHA512,
}


def new_symmetric() -> bytes:
    return os.urandom(32)


def new_material_id() -> str:
    """The 64-hex-digit id AWS gives each key material version (CurrentKeyMaterialId)."""
    return os.urandom(32).hex()


_CURVES = {"ECC_NIST_P256": ec.SECP256R1, "ECC_NIST_P384": ec.SECP384R1}


def new_ec_p256() -> tuple[bytes, bytes]:
    return new_ec("ECC_NIST_P256")


def new_ec(key_spec: str) -> tuple[bytes, bytes]:
    """(private key as PKCS#8 DER, public key as SubjectPublicKeyInfo DER) on the spec's curve."""
    private = ec.generate_private_key(_CURVES[key_spec]())
    private_der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_der, public_der


def seal(box: SecretBox, raw: bytes) -> str:
    return box.seal(base64.b64encode(raw).decode())


def unseal(box: SecretBox, sealed: str) -> bytes:
    return base64.b64decode(box.open(sealed))


def check_context(context: Mapping[str, str] | None) -> dict[str, str]:
    context = dict(context or {})
    for key, value in context.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            raise ValidationException("EncryptionContext keys and values must be strings")
    return context


def _aad(header: bytes, context: Mapping[str, str]) -> bytes:
    canonical = json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()
    return _AAD_LABEL + header + canonical


@dataclass(frozen=True, slots=True)
class Blob:
    key_id: str
    version: int
    nonce: bytes
    sealed: bytes
    header: bytes


def parse_blob(blob: bytes) -> Blob:
    if len(blob) < _BLOB_HEADER.size + 16:
        raise InvalidCiphertextException("The ciphertext is invalid.")
    marker, key_id, version, nonce = _BLOB_HEADER.unpack_from(blob)
    if marker != BLOB_VERSION:
        raise InvalidCiphertextException("The ciphertext is invalid.")
    try:
        key_text = key_id.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidCiphertextException("The ciphertext is invalid.") from None
    return Blob(key_text, version, nonce, blob[_BLOB_HEADER.size :], blob[: _BLOB_HEADER.size])


def encrypt(
    material: bytes, key_id: str, version: int, plaintext: bytes, context: Mapping[str, str]
) -> bytes:
    header = _BLOB_HEADER.pack(BLOB_VERSION, key_id.encode("ascii"), version, os.urandom(12))
    nonce = header[-12:]
    return header + AESGCM(material).encrypt(nonce, plaintext, _aad(header, context))


def decrypt(material: bytes, blob: Blob, context: Mapping[str, str]) -> bytes:
    try:
        return AESGCM(material).decrypt(blob.nonce, blob.sealed, _aad(blob.header, context))
    except InvalidTag:
        raise InvalidCiphertextException("The ciphertext is invalid.") from None


def _prepared(message: bytes, message_type: str, algorithm: str) -> tuple[bytes, object]:
    hash_type = _HASHES[algorithm]
    if message_type == "RAW":
        return message, ec.ECDSA(hash_type())
    if message_type == "DIGEST":
        if len(message) != hash_type.digest_size:
            raise ValidationException(
                f"Digest is invalid length for algorithm {algorithm}: expected "
                f"{hash_type.digest_size} bytes"
            )
        return message, ec.ECDSA(utils.Prehashed(hash_type()))
    raise ValidationException(f"MessageType {message_type!r} is not supported")


def sign(private_der: bytes, message: bytes, message_type: str, algorithm: str) -> bytes:
    """A DER-encoded ECDSA signature, as AWS returns it."""
    private = serialization.load_der_private_key(private_der, password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    data, scheme = _prepared(message, message_type, algorithm)
    return private.sign(data, scheme)  # type: ignore[arg-type]


def verify(
    public_der: bytes, message: bytes, message_type: str, algorithm: str, signature: bytes
) -> bool:
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, ec.EllipticCurvePublicKey)
    data, scheme = _prepared(message, message_type, algorithm)
    try:
        public.verify(signature, data, scheme)  # type: ignore[arg-type]
    except (InvalidSignature, ValueError):
        return False
    return True
