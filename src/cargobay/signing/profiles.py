"""Signing profiles: the part of AWS Signer's API that ECR managed signing uses
(PutSigningProfile, GetSigningProfile, ListSigningProfiles, CancelSigningProfile) for the one
platform it signs container images with, `Notation-OCI-SHA384-ECDSA`.

A profile owns a KMS key (ECC_NIST_P384, SIGN_VERIFY) created in the profile's account, and a
certificate chain (`certs.issue_chain`) issued once, when the profile is created, valid for
the profile's signature validity period. Canceling a profile stops new signatures; existing
ones stay verifiable with the exported root. Results are botocore-shaped; errors are
`signing.errors` exceptions.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import string
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cargobay.metadata import schema
from cargobay.metadata.sql import insert_ignore
from cargobay.signing.errors import (
    AccessDeniedException,
    ResourceNotFoundException,
    ValidationException,
)

if TYPE_CHECKING:
    from cargobay.kms.service import KmsService
    from cargobay.metadata.db import Database

P = schema.signing_profiles
PLATFORM = "Notation-OCI-SHA384-ECDSA"
PLATFORM_DISPLAY_NAME = "Notation for Container Registries"
KEY_SPEC = "ECC_NIST_P384"
SIGNING_ALGORITHM = "ECDSA_SHA_384"
ACTIVE, CANCELED, REVOKED = "Active", "Canceled", "Revoked"
DEFAULT_VALIDITY = (135, "MONTHS")  # AWS Signer's default signature validity period
MAX_MONTHS = 135
_MONTHS = {"DAYS": None, "MONTHS": 1, "YEARS": 12}
_ARN = re.compile(r"^arn:aws(?:-[a-z]+)*:signer:([a-z0-9-]+):([0-9]{12}):/signing-profiles/(\w+)$")
_VERSION_ALPHABET = string.ascii_letters + string.digits


def profile_arn(region: str, account_id: str, name: str) -> str:
    return f"arn:aws:signer:{region}:{account_id}:/signing-profiles/{name}"


def parse_arn(arn: str) -> tuple[str, str, str] | None:
    """(region, account, name) of a signing profile ARN, or None."""
    match = _ARN.fullmatch(arn)
    return (match.group(1), match.group(2), match.group(3)) if match else None


@dataclass(frozen=True, slots=True)
class Profile:
    account_id: str
    region: str
    name: str
    version: str
    platform_id: str
    status: str
    validity_value: int
    validity_type: str
    signing_parameters: dict[str, str]
    tags: dict[str, str]
    key_id: str
    certificate_chain: str

    @property
    def arn(self) -> str:
        return profile_arn(self.region, self.account_id, self.name)

    @property
    def version_arn(self) -> str:
        return f"{self.arn}/{self.version}"

    def summary(self) -> dict[str, Any]:
        """The SigningProfile shape (ListSigningProfiles)."""
        shape: dict[str, Any] = {
            "profileName": self.name,
            "profileVersion": self.version,
            "profileVersionArn": self.version_arn,
            "signatureValidityPeriod": {"value": self.validity_value, "type": self.validity_type},
            "platformId": self.platform_id,
            "platformDisplayName": PLATFORM_DISPLAY_NAME,
            "status": self.status,
            "arn": self.arn,
        }
        if self.signing_parameters:
            shape["signingParameters"] = dict(self.signing_parameters)
        if self.tags:
            shape["tags"] = dict(self.tags)
        return shape

    def put_result(self) -> dict[str, Any]:
        """The PutSigningProfile response."""
        return {
            "arn": self.arn,
            "profileVersion": self.version,
            "profileVersionArn": self.version_arn,
        }

    def description(self) -> dict[str, Any]:
        """The GetSigningProfile response."""
        return self.summary()


def _profile(row: Any) -> Profile:
    return Profile(
        account_id=row.account_id,
        region=row.region,
        name=row.name,
        version=row.version,
        platform_id=row.platform_id,
        status=row.status,
        validity_value=row.validity_value,
        validity_type=row.validity_type,
        signing_parameters=json.loads(row.signing_parameters),
        tags=json.loads(row.tags),
        key_id=row.key_id,
        certificate_chain=row.certificate_chain,
    )


def _add_months(moment: dt.datetime, months: int) -> dt.datetime:
    year, month = divmod(moment.month - 1 + months, 12)
    day = min(moment.day, 28)  # every month has a 28th
    return moment.replace(year=moment.year + year, month=month + 1, day=day)


def not_after(value: int, kind: str, now: dt.datetime) -> dt.datetime:
    """When a profile's certificates (and so its signatures) stop being valid."""
    months = _MONTHS.get(kind)
    if kind not in _MONTHS or value < 1:
        raise ValidationException(
            "signatureValidityPeriod must be a positive DAYS, MONTHS or YEARS"
        )
    if months is None:
        if value > MAX_MONTHS * 31:
            raise ValidationException(f"signatureValidityPeriod may be at most {MAX_MONTHS} months")
        return now + dt.timedelta(days=value)
    if value * months > MAX_MONTHS:
        raise ValidationException(f"signatureValidityPeriod may be at most {MAX_MONTHS} months")
    return _add_months(now, value * months)


class SigningProfiles:
    """The signing-profile operations of one deployment region."""

    def __init__(self, db: Database, region: str, kms: KmsService | None = None) -> None:
        self.db = db
        self.region = region
        self.kms = kms

    async def find(self, account_id: str, name: str) -> Profile | None:
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(P).where(
                        P.c.account_id == account_id, P.c.region == self.region, P.c.name == name
                    )
                )
            ).one_or_none()
        return None if row is None else _profile(row)

    async def by_arn(self, arn: str) -> Profile | None:
        parsed = parse_arn(arn)
        if parsed is None or parsed[0] != self.region:
            return None
        return await self.find(parsed[1], parsed[2])

    async def _existing(self, account_id: str, name: str) -> Profile:
        profile = await self.find(account_id, name)
        if profile is None:
            raise ResourceNotFoundException(f"Signing profile {name} does not exist.")
        return profile

    async def put(
        self,
        account_id: str,
        name: str,
        *,
        platform_id: str,
        validity: dict[str, Any] | None = None,
        signing_parameters: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        signing_material: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """PutSigningProfile: create the profile, its KMS key and its certificate chain. On an
        active profile of that name, a new version with the new parameters and tags, the same
        key and chain (so its validity period cannot change: the certificates carry it); a
        canceled profile's name is not reused."""
        if platform_id != PLATFORM:
            raise ValidationException(
                f"The platform {platform_id} is not supported: the only platform is {PLATFORM}."
            )
        if signing_material is not None or overrides is not None:
            raise ValidationException(
                f"The platform {PLATFORM} does not accept signingMaterial or overrides: "
                "its certificates are issued for the profile."
            )
        existing = await self.find(account_id, name)
        value, kind = DEFAULT_VALIDITY
        if existing is not None:
            if existing.status != ACTIVE:
                raise ValidationException(
                    f"The signing profile {name} is {existing.status.lower()}: its name cannot "
                    "be reused."
                )
            value, kind = existing.validity_value, existing.validity_type
        if validity:
            value, kind = validity.get("value", value), validity.get("type", kind)
        expires = not_after(value, kind, dt.datetime.now(dt.UTC))
        if existing is not None and (value, kind) != (
            existing.validity_value,
            existing.validity_type,
        ):
            raise ValidationException(
                f"The signature validity period of the signing profile {name} cannot change: "
                "its certificates were issued for it."
            )
        values = {
            "version": "".join(secrets.choice(_VERSION_ALPHABET) for _ in range(10)),
            "validity_value": value,
            "validity_type": kind,
            "signing_parameters": json.dumps(signing_parameters or {}),
            "tags": json.dumps(tags or {}),
        }
        where = (P.c.account_id == account_id, P.c.region == self.region, P.c.name == name)
        if existing is not None:
            async with self.db.write() as conn:
                await conn.execute(P.update().where(*where, P.c.status == ACTIVE).values(**values))
            return (await self._existing(account_id, name)).put_result()
        key_id, chain = await self._issue(account_id, name, expires)
        async with self.db.write() as conn:
            await insert_ignore(
                conn,
                P,
                account_id=account_id,
                region=self.region,
                name=name,
                platform_id=platform_id,
                status=ACTIVE,
                key_id=key_id,
                certificate_chain=chain,
                created_at=time.time(),
                **values,
            )
        stored = await self._existing(account_id, name)
        if stored.key_id != key_id:  # a concurrent put created the profile first
            assert self.kms is not None
            await self.kms.schedule_key_deletion(account_id, key_id, pending_window_days=7)
        return stored.put_result()

    async def _issue(self, account_id: str, name: str, expires: dt.datetime) -> tuple[str, str]:
        """A new KMS signing key for the profile, and the chain certifying it."""
        assert self.kms is not None, "creating a profile needs the KMS service"
        from cargobay.signing import certs  # `cryptography`: only where certificates are made

        metadata = await self.kms.create_key(
            account_id,
            description=f"Signing key of the signing profile {name}",
            key_spec=KEY_SPEC,
            key_usage="SIGN_VERIFY",
            tags=[{"TagKey": "cargobay:signing-profile", "TagValue": name}],
        )
        key_id = metadata["KeyMetadata"]["KeyId"]
        public = await self.kms.get_public_key(account_id, key_id)
        chain = certs.issue_chain(name, account_id, public["PublicKey"], expires)
        return key_id, certs.to_pem(chain)

    async def get(self, account_id: str, name: str, owner: str | None = None) -> dict[str, Any]:
        if owner is not None and owner != account_id:
            raise AccessDeniedException(
                f"The signing profile {name} of account {owner} is not shared with you."
            )
        return (await self._existing(account_id, name)).description()

    async def cancel(self, account_id: str, name: str) -> None:
        """CancelSigningProfile: no new signatures; idempotent on a canceled profile."""
        await self._existing(account_id, name)
        async with self.db.write() as conn:
            await conn.execute(
                P.update()
                .where(
                    P.c.account_id == account_id,
                    P.c.region == self.region,
                    P.c.name == name,
                    P.c.status == ACTIVE,
                )
                .values(status=CANCELED, canceled_at=time.time())
            )

    async def list(
        self,
        account_id: str,
        *,
        include_canceled: bool = False,
        max_results: int | None = None,
        next_token: str | None = None,
        platform_id: str | None = None,
        statuses: list[str] | None = None,
    ) -> dict[str, Any]:
        limit = max_results or 25
        query = (
            select(P)
            .where(P.c.account_id == account_id, P.c.region == self.region)
            .order_by(P.c.name)
            .limit(limit + 1)
        )
        if next_token:
            query = query.where(P.c.name > _decode_token(next_token))
        if platform_id:
            query = query.where(P.c.platform_id == platform_id)
        if statuses:
            query = query.where(P.c.status.in_(statuses))
        elif not include_canceled:
            query = query.where(P.c.status != CANCELED)
        async with self.db.read() as conn:
            rows = (await conn.execute(query)).all()
        profiles = [_profile(row) for row in rows[:limit]]
        result: dict[str, Any] = {"profiles": [p.summary() for p in profiles]}
        if len(rows) > limit:
            result["nextToken"] = base64.urlsafe_b64encode(profiles[-1].name.encode()).decode()
        return result

    async def root_certificate(self, account_id: str, name: str) -> str:
        """The PEM root certificate a verifier trusts for this profile's signatures."""
        from cargobay.signing import certs

        chain = certs.from_pem((await self._existing(account_id, name)).certificate_chain)
        return certs.to_pem(chain[-1:])


def _decode_token(token: str) -> str:
    try:
        name = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationException("The nextToken is invalid.") from None
    if not name:
        raise ValidationException("The nextToken is invalid.")
    return name
