"""The cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey(+WithoutPlaintext),
Sign, Verify and GetPublicKey. Each reads the key's row first, so a key disabled or scheduled
for deletion anywhere stops working at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cargobay.kms import material, store
from cargobay.kms.core import KmsCore
from cargobay.kms.errors import (
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    KMSInvalidSignatureException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from cargobay.kms.model import ENCRYPT_DECRYPT, KEY_SPECS, SIGN_VERIFY, SYMMETRIC, KeyRecord

DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}


def _check_bytes(value: bytes, name: str, maximum: int = 4096) -> bytes:
    if not isinstance(value, bytes | bytearray) or not 1 <= len(value) <= maximum:
        raise ValidationException(f"{name} must be 1 to {maximum} bytes")
    return bytes(value)


class CryptoOperations(KmsCore):
    async def _opened(self, key: KeyRecord, version: int) -> tuple[bytes, str, bytes | None]:
        """(material, material id, public key) of one version of a key."""
        async with self.db.read_now() as conn:
            row = await store.material_row(conn, key.id, version)
        if row is None:
            raise InvalidCiphertextException(
                "The ciphertext refers to key material that does not exist."
            )
        raw = self.materials.get(key.id, version)
        if raw is None:
            raw = material.unseal(self.box, row.sealed)
            self.materials.put(key.id, version, raw)
        return raw, row.material_id, row.public_key

    @staticmethod
    def _usage(key: KeyRecord, usage: str, operation: str) -> None:
        if key.key_usage != usage:
            raise InvalidKeyUsageException(
                f"{key.arn} key usage is {key.key_usage} which is not valid for {operation}."
            )

    @staticmethod
    def _algorithm(key: KeyRecord, algorithm: str | None) -> str:
        allowed = KEY_SPECS[key.key_spec]["encryption"] or []
        algorithm = algorithm or SYMMETRIC
        if algorithm not in allowed:
            raise InvalidKeyUsageException(
                f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}."
            )
        return algorithm

    async def _usable_key(self, account_id: str, key_id: str, usage: str, op: str) -> KeyRecord:
        key = await self.key(account_id, key_id)
        self.require_usable(key)
        self._usage(key, usage, op)
        return key

    async def _seal(
        self, key: KeyRecord, plaintext: bytes, context: Mapping[str, str] | None
    ) -> tuple[bytes, str]:
        raw, material_id, _ = await self._opened(key, key.current_version)
        ctx = material.check_context(context)
        return material.encrypt(raw, key.id, key.current_version, plaintext, ctx), material_id

    async def encrypt(
        self,
        account_id: str,
        key_id: str,
        plaintext: bytes,
        *,
        encryption_context: Mapping[str, str] | None = None,
        encryption_algorithm: str | None = None,
    ) -> dict[str, Any]:
        plaintext = _check_bytes(plaintext, "Plaintext")
        key = await self._usable_key(account_id, key_id, ENCRYPT_DECRYPT, "Encrypt")
        algorithm = self._algorithm(key, encryption_algorithm)
        blob, _ = await self._seal(key, plaintext, encryption_context)
        return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": algorithm}

    async def key_for_ciphertext(self, ciphertext_blob: bytes) -> KeyRecord:
        """The key a ciphertext names (a door authorizes Decrypt against it first)."""
        blob = material.parse_blob(_check_bytes(ciphertext_blob, "CiphertextBlob", 6144))
        async with self.db.read_now() as conn:
            key = await store.find_key_by_id(conn, blob.key_id)
        if key is None:
            raise NotFoundException(f"Key '{blob.key_id}' does not exist")
        return key

    async def _open(
        self,
        account_id: str,
        ciphertext_blob: bytes,
        context: Mapping[str, str] | None,
        key_id: str | None,
        algorithm: str | None,
    ) -> tuple[KeyRecord, bytes, str, str]:
        blob = material.parse_blob(_check_bytes(ciphertext_blob, "CiphertextBlob", 6144))
        key = await self.key_for_ciphertext(ciphertext_blob)
        if key_id is not None and (await self.key(account_id, key_id)).id != key.id:
            raise IncorrectKeyException(
                "The key ID in the request does not identify a CMK that can perform this operation."
            )
        self.require_usable(key)
        self._usage(key, ENCRYPT_DECRYPT, "Decrypt")
        algorithm = self._algorithm(key, algorithm)
        raw, material_id, _ = await self._opened(key, blob.version)
        plaintext = material.decrypt(raw, blob, material.check_context(context))
        return key, plaintext, algorithm, material_id

    async def decrypt(
        self,
        account_id: str,
        ciphertext_blob: bytes,
        *,
        encryption_context: Mapping[str, str] | None = None,
        key_id: str | None = None,
        encryption_algorithm: str | None = None,
    ) -> dict[str, Any]:
        key, plaintext, algorithm, material_id = await self._open(
            account_id, ciphertext_blob, encryption_context, key_id, encryption_algorithm
        )
        return {
            "KeyId": key.arn,
            "Plaintext": plaintext,
            "EncryptionAlgorithm": algorithm,
            "KeyMaterialId": material_id,
        }

    async def re_encrypt(
        self,
        account_id: str,
        ciphertext_blob: bytes,
        destination_key_id: str,
        *,
        source_encryption_context: Mapping[str, str] | None = None,
        destination_encryption_context: Mapping[str, str] | None = None,
        source_key_id: str | None = None,
        source_encryption_algorithm: str | None = None,
        destination_encryption_algorithm: str | None = None,
    ) -> dict[str, Any]:
        source, plaintext, source_alg, source_material = await self._open(
            account_id,
            ciphertext_blob,
            source_encryption_context,
            source_key_id,
            source_encryption_algorithm,
        )
        dest = await self._usable_key(account_id, destination_key_id, ENCRYPT_DECRYPT, "ReEncrypt")
        dest_alg = self._algorithm(dest, destination_encryption_algorithm)
        blob, dest_material = await self._seal(dest, plaintext, destination_encryption_context)
        return {
            "CiphertextBlob": blob,
            "SourceKeyId": source.arn,
            "KeyId": dest.arn,
            "SourceEncryptionAlgorithm": source_alg,
            "DestinationEncryptionAlgorithm": dest_alg,
            "SourceKeyMaterialId": source_material,
            "DestinationKeyMaterialId": dest_material,
        }

    async def generate_data_key(
        self,
        account_id: str,
        key_id: str,
        *,
        key_spec: str | None = None,
        number_of_bytes: int | None = None,
        encryption_context: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A fresh data key, in plaintext and encrypted under the KMS key."""
        if (key_spec is None) == (number_of_bytes is None):
            raise ValidationException("Please specify either number of bytes or key spec.")
        if key_spec is not None:
            if key_spec not in DATA_KEY_BYTES:
                raise ValidationException(f"KeySpec {key_spec} must be AES_256 or AES_128")
            size = DATA_KEY_BYTES[key_spec]
        else:
            assert number_of_bytes is not None
            if not 1 <= number_of_bytes <= 1024:
                raise ValidationException("NumberOfBytes must be between 1 and 1024")
            size = number_of_bytes
        key = await self._usable_key(account_id, key_id, ENCRYPT_DECRYPT, "GenerateDataKey")
        self._algorithm(key, None)
        plaintext = os.urandom(size)
        blob, material_id = await self._seal(key, plaintext, encryption_context)
        return {
            "CiphertextBlob": blob,
            "Plaintext": plaintext,
            "KeyId": key.arn,
            "KeyMaterialId": material_id,
        }

    async def generate_data_key_without_plaintext(
        self,
        account_id: str,
        key_id: str,
        *,
        key_spec: str | None = None,
        number_of_bytes: int | None = None,
        encryption_context: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        result = await self.generate_data_key(
            account_id,
            key_id,
            key_spec=key_spec,
            number_of_bytes=number_of_bytes,
            encryption_context=encryption_context,
        )
        del result["Plaintext"]
        return result

    def _signing(self, key: KeyRecord, algorithm: str, operation: str) -> None:
        self.require_usable(key)
        self._usage(key, SIGN_VERIFY, operation)
        if algorithm not in (KEY_SPECS[key.key_spec]["signing"] or []):
            raise InvalidKeyUsageException(
                f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}."
            )

    async def sign(
        self,
        account_id: str,
        key_id: str,
        message: bytes,
        signing_algorithm: str,
        *,
        message_type: str = "RAW",
    ) -> dict[str, Any]:
        message = _check_bytes(message, "Message")
        key = await self.key(account_id, key_id)
        self._signing(key, signing_algorithm, "Sign")
        private, _, _ = await self._opened(key, key.current_version)
        signature = material.sign(private, message, message_type, signing_algorithm)
        return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": signing_algorithm}

    async def verify(
        self,
        account_id: str,
        key_id: str,
        message: bytes,
        signature: bytes,
        signing_algorithm: str,
        *,
        message_type: str = "RAW",
    ) -> dict[str, Any]:
        """SignatureValid true, or KMSInvalidSignatureException (AWS never answers false)."""
        message = _check_bytes(message, "Message")
        signature = _check_bytes(signature, "Signature", 6144)
        key = await self.key(account_id, key_id)
        self._signing(key, signing_algorithm, "Verify")
        _, _, public = await self._opened(key, key.current_version)
        assert public is not None
        if not material.verify(public, message, message_type, signing_algorithm, signature):
            raise KMSInvalidSignatureException("The signature is not valid.")
        return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": signing_algorithm}

    async def get_public_key(self, account_id: str, key_id: str) -> dict[str, Any]:
        key = await self.key(account_id, key_id)
        if key.key_spec == SYMMETRIC:
            raise UnsupportedOperationException(
                f"{key.arn} key spec {key.key_spec} does not support GetPublicKey"
            )
        self.require_usable(key)
        async with self.db.read_now() as conn:
            row = await store.material_row(conn, key.id, key.current_version)
        return {
            "KeyId": key.arn,
            "PublicKey": row.public_key,
            "CustomerMasterKeySpec": key.key_spec,
            "KeySpec": key.key_spec,
            "KeyUsage": key.key_usage,
            "SigningAlgorithms": list(KEY_SPECS[key.key_spec]["signing"]),
        }
