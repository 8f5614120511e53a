"""The `sign` task: sign one pushed image with one signing profile and attach the signature.

The signature is a Notary Project JWS envelope (`signing.envelope`) over the image's
descriptor, signed by the profile's KMS key (ECDSA_SHA_384 over the SHA-384 digest of the JWS
signing input), with the profile's certificate chain in `x5c`. It is pushed as an OCI manifest
whose subject is the image, through the same manifest service as any push (origin REGISTRY, so
no hook signs or scans it again), and so appears in `/v2/<name>/referrers/<digest>`.

Idempotent: a task that runs again finds its signature among the image's referrers (by the
profile annotation) and records it instead of signing twice. Failures a retry cannot cure
(no such profile, canceled, key disabled, a pusher without `signer:SignPayload` on the
profile) are recorded at once as FAILED with a failure code;
anything else retries, and is recorded FAILED after MAX_ATTEMPTS.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from cargobay import regions
from cargobay.errors import ImageNotFound
from cargobay.iam.permissions import SIGN_PAYLOAD
from cargobay.iam.principal import Principal
from cargobay.jobs.queue import Fail, Retry, Task
from cargobay.kms.errors import KmsError
from cargobay.oci.manifest import OCI_MANIFEST
from cargobay.registry.hooks import REGISTRY
from cargobay.signing import envelope
from cargobay.signing.configuration import COMPLETE, FAILED, TASK_KIND
from cargobay.signing.profiles import ACTIVE, SIGNING_ALGORITHM, SigningProfiles

if TYPE_CHECKING:
    from cargobay.registry.manifests import Manifest
    from cargobay.registry.repositories import Repository
    from cargobay.registry.services import Services

log = logging.getLogger("cargobay.signing")

MAX_ATTEMPTS = 5
# ImageSigningStatus.failureCode values (the model leaves the string open).
PROFILE_NOT_FOUND = "SigningProfileNotFound"
PROFILE_NOT_ACTIVE = "SigningProfileNotActive"
PROFILE_ACCESS_DENIED = "SigningProfileAccessDenied"
CERTIFICATE_EXPIRED = "SigningCertificateExpired"
KMS_ERROR = "KmsError"
SIGNING_FAILED = "SigningFailed"


class SigningFailure(Exception):
    """Signing cannot succeed as things are: `code` and `reason` for the image's status."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def _blocks(data: bytes) -> AsyncIterator[list[bytes]]:
    yield [data]


class ImageSigner:
    def __init__(self, services: Services) -> None:
        self.services = services

    def handlers(self) -> dict[str, Any]:
        return {TASK_KIND: self.handle}

    async def handle(self, task: Task) -> None:
        payload = task.payload
        services = self.services
        repo = await services.repositories.find(payload["registry_id"], payload["repository"])
        if repo is None or repo.id != payload["repository_id"]:
            return  # the repository was deleted (its statuses went with it)
        digest, arn = payload["digest"], payload["profile_arn"]
        try:
            manifest = await services.manifests.get(repo.registry_id, repo.name, digest)
        except ImageNotFound:
            return  # deleted since the push
        try:
            await self._check_pusher(payload.get("pusher"), arn)
            signature = await self.sign(repo, digest, manifest, arn)
        except SigningFailure as exc:
            log.warning("signing %s@%s with %s failed: %s", repo.name, digest, arn, exc.reason)
            await services.signing.record(
                repo.id, digest, arn, FAILED, failure_code=exc.code, failure_reason=exc.reason
            )
            return
        except Exception as exc:
            log.exception("signing %s@%s (attempt %d)", repo.name, digest, task.attempts)
            if task.attempts < MAX_ATTEMPTS:
                raise Retry(f"{type(exc).__name__}: {exc}") from exc
            await services.signing.record(
                repo.id,
                digest,
                arn,
                FAILED,
                failure_code=SIGNING_FAILED,
                failure_reason="The image could not be signed.",
            )
            raise Fail(f"{type(exc).__name__}: {exc}") from exc
        await services.signing.record(repo.id, digest, arn, COMPLETE, signature_digest=signature)
        log.info("signed %s@%s with %s: %s", repo.name, digest, arn, signature)

    async def _check_pusher(self, pusher: dict[str, Any] | None, arn: str) -> None:
        """ECR signs with the identity that pushed: without `signer:SignPayload` on the profile
        (identity policies, the one policy engine) the image is not signed. Pushes the registry
        makes itself carry no pusher and are not checked."""
        if pusher is None:
            return
        from cargobay.signing.door import ProfileResource  # the door imports this module's kin

        principal = Principal(
            pusher["account_id"], pusher["user_name"], "", is_admin=pusher["is_admin"]
        )
        resource = ProfileResource(principal.account_id, arn)
        if not await self.services.authorizer.allowed(principal, SIGN_PAYLOAD, resource):  # type: ignore[arg-type]
            raise SigningFailure(
                PROFILE_ACCESS_DENIED,
                f"User: {principal.arn} is not authorized to perform: {SIGN_PAYLOAD} on "
                f"resource: {arn}",
            )

    async def _profile(self, repo: Repository, arn: str) -> tuple[Any, list[Any]]:
        from cargobay.signing import certs  # `cryptography`, loaded by the first signature

        region = regions.current(self.services.settings.region)  # the push's (`jobs.queue`)
        profiles = SigningProfiles(self.services.db, region)
        profile = await profiles.by_arn(arn)
        if profile is None:
            raise SigningFailure(PROFILE_NOT_FOUND, f"The signing profile {arn} does not exist.")
        if profile.account_id != repo.registry_id:
            raise SigningFailure(
                PROFILE_ACCESS_DENIED,
                f"The signing profile {arn} belongs to another account.",
            )
        if profile.status != ACTIVE:
            raise SigningFailure(
                PROFILE_NOT_ACTIVE, f"The signing profile {arn} is {profile.status}."
            )
        chain = certs.from_pem(profile.certificate_chain)
        if min(c.not_valid_after_utc for c in chain) <= dt.datetime.now(dt.UTC):
            raise SigningFailure(
                CERTIFICATE_EXPIRED, f"The certificate of the signing profile {arn} has expired."
            )
        return profile, chain

    async def _existing(self, repo: Repository, digest: str, arn: str) -> str | None:
        listed = json.loads(
            await self.services.manifests.referrers(repo, digest, envelope.SIGNATURE_TYPE)
        )
        for entry in listed["manifests"]:
            if (entry.get("annotations") or {}).get(envelope.PROFILE_ANNOTATION) == arn:
                return entry["digest"]
        return None

    async def sign(self, repo: Repository, digest: str, manifest: Manifest, arn: str) -> str:
        """Sign the image with the profile `arn` names; the signature manifest's digest."""
        from cargobay.signing import certs

        profile, chain = await self._profile(repo, arn)
        existing = await self._existing(repo, digest, arn)
        if existing is not None:
            return existing
        services = self.services
        now = dt.datetime.now(dt.UTC)
        unsigned = envelope.prepare(
            envelope.payload(manifest.media_type, digest, len(manifest.content)), now
        )
        try:
            signed = await services.kms.sign(
                profile.account_id,
                profile.key_id,
                hashlib.sha384(unsigned.signing_input).digest(),
                SIGNING_ALGORITHM,
                message_type="DIGEST",
            )
        except KmsError as exc:
            raise SigningFailure(KMS_ERROR, f"{exc.code}: {exc.message}") from None
        document = envelope.assemble(unsigned, signed["Signature"], [certs.der(c) for c in chain])
        subject = {
            "mediaType": manifest.media_type,
            "digest": digest,
            "size": len(manifest.content),
        }
        signature_manifest = envelope.signature_manifest(
            document, subject, [certs.thumbprint(c) for c in chain], arn, now
        )
        for blob in (document, envelope.EMPTY_CONFIG):
            await services.uploads.upload_whole(repo, envelope.digest_of(blob), _blocks(blob))
        result = await services.manifests.put_image(
            repo, signature_manifest, OCI_MANIFEST, origin=REGISTRY
        )
        return result.digest
