"""Pull-time update exclusions (ECR's RegisterPullTimeUpdateExclusion and friends): principals
whose pulls leave an image's lastRecordedPullTime alone, so scanners, replication and other
automation do not keep images "recently pulled" for lifecycle rules. Exclusions are per
account and region (the request's, `cargobay.regions`), as in ECR."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from sqlalchemy import and_, func, select

from cargobay import regions
from cargobay.errors import (
    ExclusionAlreadyExists,
    ExclusionNotFound,
    InvalidParameter,
    LimitExceeded,
)
from cargobay.metadata import schema
from cargobay.metadata.db import Database
from cargobay.metadata.sql import insert_ignore

# botocore's PrincipalArn (IAM users and roles only) and PullTimeUpdateExclusionList (max 100).
PRINCIPAL_ARN = re.compile(
    r"arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/[\w+=,.@-]+(/[\w+=,.@-]+)*"
)
MAX_ARN = 200
MAX_EXCLUSIONS = 100


@dataclass(frozen=True, slots=True)
class Exclusion:
    principal_arn: str
    created_at: float


def check_arn(arn: object) -> str:
    if not isinstance(arn, str) or len(arn) > MAX_ARN or not PRINCIPAL_ARN.fullmatch(arn):
        raise InvalidParameter(
            "Invalid parameter at 'principalArn' failed to satisfy constraint: 'Member must be "
            "the ARN of an IAM user or role (arn:aws:iam::<account>:user/<name> or :role/<name>)'"
        )
    return arn


_X = schema.pull_time_update_exclusions


def _mine(registry_id: str) -> object:
    """The registry's exclusions in the request's region."""
    return and_(_X.c.registry_id == registry_id, _X.c.region == regions.current_key())


class PullTimeExclusions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def register(self, registry_id: str, arn: str) -> Exclusion:
        check_arn(arn)
        x = _X
        now = time.time()
        async with self.db.write() as conn:
            count = (
                await conn.execute(select(func.count()).select_from(x).where(_mine(registry_id)))
            ).scalar_one()
            inserted = await insert_ignore(
                conn,
                x,
                registry_id=registry_id,
                region=regions.current_key(),
                principal_arn=arn,
                created_at=now,
            )
            if not inserted.rowcount:
                raise ExclusionAlreadyExists(
                    f"The principal '{arn}' is already excluded from pull time updates in the "
                    f"registry with id '{registry_id}'"
                )
            if count >= MAX_EXCLUSIONS:
                raise LimitExceeded(
                    f"The maximum number of pull time update exclusions ({MAX_EXCLUSIONS}) has "
                    f"been reached for the registry '{registry_id}'"
                )
        return Exclusion(arn, now)

    async def deregister(self, registry_id: str, arn: str) -> None:
        check_arn(arn)
        x = _X
        async with self.db.write() as conn:
            result = await conn.execute(
                x.delete().where(_mine(registry_id), x.c.principal_arn == arn)
            )
        if not result.rowcount:
            raise ExclusionNotFound(
                f"The principal '{arn}' is not excluded from pull time updates in the registry "
                f"with id '{registry_id}'"
            )

    async def list(self, registry_id: str, after: str | None, limit: int) -> list[str]:
        """Excluded principal ARNs in ARN order, after `after`."""
        x = _X
        query = select(x.c.principal_arn).where(_mine(registry_id))
        if after:
            query = query.where(x.c.principal_arn > after)
        async with self.db.read() as conn:
            rows = await conn.execute(query.order_by(x.c.principal_arn).limit(limit))
            return list(rows.scalars())

    async def excluded(self, registry_id: str, arn: str | None) -> bool:
        """Whether a pull by `arn` (None: the registry itself) leaves pull times alone."""
        if arn is None:
            return False
        x = _X
        async with self.db.read_now() as conn:
            row = (
                await conn.execute(
                    select(x.c.principal_arn).where(_mine(registry_id), x.c.principal_arn == arn)
                )
            ).first()
        return row is not None
