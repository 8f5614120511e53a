"""The pull lookup both halves of a manifest GET share: one statement that reads the manifest
with the policies that authorize it and the pull-through routing (`metadata.records.pulls`).

The door authorizes with `policies` before anything of `row` is shown to the caller; a pull
that a pull-through rule covers, or of a repository that does not exist yet, goes the long
way (the cache fills it, or names the missing repository) instead.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from cargobay import regions
from cargobay.errors import DomainError, Unauthenticated
from cargobay.iam.authz import LoadedPolicies, Resource
from cargobay.iam.principal import Principal
from cargobay.metadata.db import Database
from cargobay.metadata.records import pulls as records
from cargobay.oci.digest import is_digest, parse_digest
from cargobay.oci.names import validate_tag

log = logging.getLogger("cargobay.auth")


@dataclass(frozen=True, slots=True)
class PullLookup:
    """What one statement found for a pull of `reference` in an existing repository."""

    reference: str
    row: Any  # records.pulls columns; `digest` is None when the manifest is absent
    policies: LoadedPolicies
    cached: bool  # a pull-through cache rule covers the repository

    @property
    def direct(self) -> bool:
        """Served from the store without the pull-through cache."""
        return not self.cached


def valid_reference(reference: str) -> bool:
    try:
        if is_digest(reference):
            parse_digest(reference)
        else:
            validate_tag(reference)
    except DomainError:
        return False
    return True


async def lookup(
    db: Database, resource: Resource, reference: str, principal: Principal
) -> PullLookup | None:
    """The pull lookup of `reference` in the repository `resource` names, or None when the
    repository does not exist or the reference is not a valid tag or digest (the long way
    answers those). Unauthenticated when the principal's access key is no longer Active."""
    if resource.name is None or not valid_reference(reference):
        return None
    caller = (principal.account_id, principal.user_name, principal.access_key_id)
    row = await records.lookup(
        db,
        resource.account_id,
        resource.name,
        reference,
        by_digest=is_digest(reference),
        caller=caller,
        with_identity=not principal.is_admin,
        region=regions.current_key(),
    )
    if row is None:
        return None
    if row.caller_admin is None:
        # Deleted or deactivated since the credential store remembered it: refused at once
        # here, on every node, whatever that store still holds.
        log.info("refused an access key revoked since it was verified")
        raise Unauthenticated("the access key is not active")
    if bool(row.caller_admin) != principal.is_admin:
        return None  # the user's standing changed since: the long way decides as it does
    policies = policies_read(row, resource, row.repository_id, principal)
    return PullLookup(reference, row, policies, bool(row.cached))


def policies_read(
    row: Any, resource: Resource, repository_id: int, principal: Principal
) -> LoadedPolicies:
    """The policies a one-statement lookup read with its row (the columns of
    `records.pulls.authorization_columns`), for the one `Authorizer` decision; the caller's
    identity policies and tags were read only for a caller that is not an administrator."""
    identity = None
    if not principal.is_admin:
        documents = (
            row.caller_policies.split(records.POLICY_SEPARATOR) if row.caller_policies else []
        )
        identity = (documents, json.loads(row.caller_tags) if row.caller_tags else {})
    return LoadedPolicies(
        resource,
        repository_id,
        row.repository_policy,
        row.registry_policy,
        row.policy_scope,
        identity,
        principal.arn,
    )
