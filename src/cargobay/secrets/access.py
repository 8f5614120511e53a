"""Secret resource policies: stored by PutResourcePolicy, and evaluated, as AWS evaluates them,
together with the caller's identity policies in the one policy engine (`iam.policy.decide`):
an explicit Deny in either wins; within the secret's account an Allow in either suffices;
across accounts both must allow.

Two readers open a secret's value:
- API callers: the door asks the `Authorizer` on the secret's ARN, and the Authorizer takes the
  secret's policy from `resource_policy` (wired in `registry.services`), so no door evaluates
  policies itself. GetSecretValue by a full ARN of another account reads the secret there:
  the door authorized the call on that ARN, which across accounts needs the secret's policy;
- the pull-through cache: it reads a rule's credential as ECR does, as the service-linked role
  `AWSServiceRoleForECRPullThroughCache`, whose identity policy allows GetSecretValue on the
  `ecr-pullthroughcache/` secrets of its own account; the secret's policy may deny it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cargobay.errors import AccessDenied
from cargobay.iam.authz import role_decision
from cargobay.iam.policy import PolicyError, parse_policy
from cargobay.metadata.db import Database
from cargobay.secrets import rules, store
from cargobay.secrets.errors import (
    InvalidParameterException,
    MalformedPolicyDocumentException,
    ResourceNotFoundException,
)

GET_SECRET_VALUE = "secretsmanager:GetSecretValue"
PULL_THROUGH_ROLE = (
    "arn:aws:iam::{account}:role/aws-service-role/pullthroughcache.ecr.amazonaws.com/"
    "AWSServiceRoleForECRPullThroughCache"
)
# The service-linked role's identity policy, as ECR's managed policy for it grants.
PULL_THROUGH_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": GET_SECRET_VALUE,
                "Resource": "arn:aws:secretsmanager:*:*:secret:ecr-pullthroughcache/*",
            }
        ],
    }
)


def owner(account_id: str, secret_id: Any) -> str:
    """The account a SecretId names: an ARN's own, else the caller's."""
    ref = rules.parse_secret_id(secret_id)
    return ref.account_id if ref.arn is not None and ref.account_id else account_id


def require_pull_through_role(row: Any) -> None:
    """AccessDenied unless the secret's policy lets ECR's pull-through role read it."""
    role = PULL_THROUGH_ROLE.format(account=row.account_id)
    policy = row.resource_policy
    if policy is not None and not _statements(policy):
        policy = None
    decision = role_decision(
        role, row.account_id, PULL_THROUGH_ROLE_POLICY, GET_SECRET_VALUE, row.arn, policy
    )
    if decision != "Allow":
        raise AccessDenied(
            f"{role} is not authorized to perform: {GET_SECRET_VALUE} on resource: {row.arn} "
            "because of the secret's resource policy"
        )


def _statements(text: str) -> bool:
    """Whether a stored policy has any statement (PutResourcePolicy accepts an empty list)."""
    return json.loads(text).get("Statement") != []


class PolicyOperations:
    """The resource-policy half of `SecretsService` (GetResourcePolicy, PutResourcePolicy,
    DeleteResourcePolicy, and the reads the policy engine and the pull-through cache make)."""

    # Provided by SecretsService: db, region, clock, _find, _names, get_secret_value.
    db: Database
    region: str
    clock: Callable[[], float]

    async def resource_policy(self, account_id: str, secret_arn: str) -> str | None:
        """The policy of the secret `secret_arn` names in `account_id` (None when it has none
        or does not exist: the operation itself then reports that)."""
        try:
            async with self.db.read_now() as conn:
                row = await self._find(conn, account_id, secret_arn)
        except (ResourceNotFoundException, InvalidParameterException):
            return None
        return row.resource_policy

    async def pull_through_secret_value(self, account_id: str, secret_arn: str) -> dict[str, Any]:
        """GetSecretValue for a pull-through cache rule of `account_id`: a secret of that
        account only, read as ECR's pull-through role (AccessDenied when its policy denies)."""
        if owner(account_id, secret_arn) != account_id:
            raise ResourceNotFoundException(store.NOT_FOUND)
        async with self.db.read_now() as conn:
            row = await self._find(conn, account_id, secret_arn)
        require_pull_through_role(row)
        return await self.get_secret_value(account_id, secret_id=secret_arn)

    async def get_resource_policy(self, account_id: str, *, secret_id: Any) -> dict[str, Any]:
        async with self.db.read_now() as conn:
            row = await self._find(conn, account_id, secret_id)
        result = self._names(row)
        if row.resource_policy is not None:
            result["ResourcePolicy"] = row.resource_policy
        return result

    async def put_resource_policy(
        self,
        account_id: str,
        *,
        secret_id: Any,
        resource_policy: Any,
        block_public_policy: Any = None,
    ) -> dict[str, Any]:
        text = store.policy_json(resource_policy)
        try:  # what the policy engine cannot evaluate is not stored (no statement: nothing)
            if _statements(text):
                parse_policy(text, resource_policy=True)
        except PolicyError as exc:
            raise MalformedPolicyDocumentException(f"The policy is not valid: {exc}") from None
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            store.require_live(row)
            await store.touch(conn, row.id, resource_policy=text, last_changed_at=self.clock())
        return self._names(row)

    async def delete_resource_policy(self, account_id: str, *, secret_id: Any) -> dict[str, Any]:
        async with self.db.write() as conn:
            row = await self._find(conn, account_id, secret_id)
            await store.touch(conn, row.id, resource_policy=None, last_changed_at=self.clock())
        return self._names(row)
