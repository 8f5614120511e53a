"""The ECR read operations' one statement: the repository, the policies that authorize the
call and what the operation reads (`metadata.records.ecrreads`), as the door needs them.

The door authorizes with `policies` before anything of the rows is answered; a call that no
row can serve (the repository does not exist, the caller's key or standing changed since the
credential store remembered it) gets None and goes the long way, which decides as before.
A caller verified with a remembered key row the credentials generation was not read for
(`confirm`) must be confirmed by the statement instead: when it is not, `CallerUnconfirmed`
sends the door the long way (the key re-read, the signature checked again).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cargobay import regions
from cargobay.errors import LayerArchived, RepositoryNotFound
from cargobay.iam.authz import LoadedPolicies, Resource
from cargobay.iam.principal import Principal
from cargobay.metadata.db import Database
from cargobay.metadata.records import ecrreads as records
from cargobay.registry.pulls import policies_read
from cargobay.registry.repositories import Repository

TAG_SEPARATOR = records.TAG_SEPARATOR  # between the tags of a `described` row
_REPOSITORY_COLUMNS = 10  # records.repositories.COLUMNS, the head's first columns


class CallerUnconfirmed(Exception):
    """The statement did not confirm the remembered key row the caller was verified with: the
    key is gone, not Active, another user's or administrator standing, or holds another secret
    (or the repository does not exist, so no row said). Not a domain error: the door re-reads
    the key, verifies the signature again and authorizes again."""


def _confirmed(head: Any, principal: Principal, verifier: str) -> bool:
    stored = head.caller_verifier
    return (
        head.caller_admin is not None
        and bool(head.caller_admin) == principal.is_admin
        and stored is not None
        and hmac.compare_digest(stored, verifier)
    )


@dataclass(frozen=True, slots=True)
class LayerState:
    """A blob linked to the repository: its size, and whether only archived images use it."""

    size: int
    archived: bool


@dataclass(frozen=True, slots=True)
class DescribeQuery:
    """The images DescribeImages reads: those `tags` or `digests` name (distinct, at most
    100 each, one at least), or else the first `limit` images after the digest `after` (""
    for the first page; DescribeImages reads one more than its page, to tell whether another
    follows), filtered by `tag_status` and `image_status` (ECR's enums, "ANY" for all)."""

    tag_status: str = "ANY"
    image_status: str = "ANY"
    after: str = ""
    limit: int = 100
    tags: tuple[str, ...] = ()
    digests: tuple[str, ...] = ()

    @property
    def by_id(self) -> bool:
        return bool(self.tags or self.digests)

    def statement(self) -> tuple[tuple[Any, Any, Any], dict[str, Any]]:
        """(shape, values) for `records.described`."""
        if self.by_id:
            values = {f"d{i}": digest for i, digest in enumerate(self.digests)}
            values.update((f"t{i}", tag) for i, tag in enumerate(self.tags))
            return ("ids", len(self.digests), len(self.tags)), values
        filtered = self.image_status != "ANY"
        values = {"after": self.after, "limit": self.limit, "image_status": self.image_status}
        return ("page", self.tag_status, filtered), values


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The (digest, tag) pairs ListImages reads: the first `limit` after `after` (a digest
    and tag, None for the first page), filtered by `tag_status` and `image_status` (ECR's
    enums, "ANY" for all); ListImages reads one more than its page."""

    tag_status: str
    image_status: str
    after: tuple[str, str] | None
    limit: int


@dataclass(frozen=True, slots=True)
class EcrRead:
    """What one statement read for a call on an existing repository."""

    repository: Repository
    policies: LoadedPolicies
    cached: bool  # a pull-through cache rule covers the repository
    # With `layer` or `layers`: the named blobs linked to the repository (others absent).
    layers: dict[str, LayerState] | None = None
    # With `tags` and `digests`: the digest each existing tag names, and the manifest rows
    # (`records.manifests.many_for_pull`'s columns) by digest: BatchGetImage's two queries.
    images: tuple[dict[str, str], dict[str, Any]] | None = None
    # With `describe`: the rows of the images DescribeImages answers (`records.described`).
    described: list[Any] | None = None
    # With `listing`: ListImages' (digest, tag) pairs (`records.listed`).
    listed: list[tuple[str, str | None]] | None = None


def layer_archived(repo: Repository, digest: str) -> LayerArchived:
    """The error of a blob only archived images use (`ArchiveService.check_blob`'s)."""
    return LayerArchived(
        f"The layer '{digest}' belongs only to archived images in the repository with "
        f"name '{repo.name}' in registry with id '{repo.registry_id}'; restore an image "
        "with UpdateImageStorageClass (targetStorageClass STANDARD) to pull it",
        detail={"digest": digest},
    )


def _states(rows: Sequence[Any], digest: str | None) -> dict[str, LayerState]:
    return {
        digest or row.layer_digest: LayerState(int(row.layer_size), bool(row.archived))
        for row in rows
        if row.layer_size is not None
    }


def _images(rows: Sequence[Any]) -> tuple[dict[str, str], dict[str, Any]]:
    tagged: dict[str, str] = {}
    manifests: dict[str, Any] = {}
    for row in rows:
        if row.digest is None:
            continue
        if row.tag is not None:
            tagged[row.tag] = row.digest
        manifests[row.digest] = row
    return tagged, manifests


async def read(
    db: Database,
    resource: Resource,
    principal: Principal,
    *,
    layer: str | None = None,
    layers: list[str] | None = None,
    tags: list[str] | None = None,
    digests: list[str] | None = None,
    describe: DescribeQuery | None = None,
    listing: ListQuery | None = None,
    confirm: str | None = None,
) -> EcrRead | None:
    """One statement for a call on the repository `resource` names: with `layer`, that
    blob's state; with `layers` (distinct, 1 to 100), theirs; with `tags` and `digests`
    (distinct, at most 100 each), the manifests they name; with `describe`, the images
    DescribeImages answers; with `listing`, the pairs ListImages answers; else the
    repository alone. With `confirm` (the verifier of the
    remembered secret the caller was verified with), CallerUnconfirmed unless the statement
    confirms the caller's key row."""
    assert resource.name is not None
    call = records.Head(
        resource.account_id,
        resource.name,
        regions.current_key(),
        (principal.account_id, principal.user_name, principal.access_key_id),
        not principal.is_admin,
    )
    rows: Sequence[Any]
    if layer is not None:
        found = await records.layer(db, call, layer)
        rows = [found] if found is not None else []
    elif layers:
        rows = await records.layers(db, call, layers)
    elif tags is not None and digests is not None:
        rows = await records.images(db, call, tags, digests)
    elif describe is not None:
        rows = await records.described(db, call, *describe.statement())
    elif listing is not None:
        rows = await records.listed(
            db, call, listing.tag_status, listing.image_status, listing.after, listing.limit
        )
    else:
        found = await records.repository(db, call)
        rows = [found] if found is not None else []
    if confirm is not None and (not rows or not _confirmed(rows[0], principal, confirm)):
        raise CallerUnconfirmed
    if not rows:
        return None
    head = rows[0]
    if head.caller_admin is None or bool(head.caller_admin) != principal.is_admin:
        # Revoked, or the user's standing changed, since the credential store remembered the
        # key: the long way decides as it always did.
        return None
    values = list(head[:_REPOSITORY_COLUMNS])
    values[5] = bool(values[5])  # scan_on_push, an integer on SQLite's own driver
    repository = Repository(*values)
    policies = policies_read(head, resource, repository.id, principal)
    # Built once with what the operation read (dataclasses.replace costs a few µs a call).
    if layer is not None or layers:
        return EcrRead(repository, policies, bool(head.cached), layers=_states(rows, layer))
    if tags is not None and digests is not None:
        return EcrRead(repository, policies, bool(head.cached), images=_images(rows))
    if describe is not None:
        found = [row for row in rows if row.digest is not None]
        return EcrRead(repository, policies, bool(head.cached), described=found)
    if listing is not None:
        pairs = [(row.digest, row.tag) for row in rows if row.digest is not None]
        return EcrRead(repository, policies, bool(head.cached), listed=pairs)
    return EcrRead(repository, policies, bool(head.cached))


async def described(
    db: Database, repo: Repository, principal: Principal, query: DescribeQuery
) -> list[Any]:
    """The rows of `read(..., describe=query)` for a call authorized the long way (the
    caller's columns are read but not used); RepositoryNotFound when the repository went."""
    caller = (principal.account_id, principal.user_name, principal.access_key_id)
    call = records.Head(repo.registry_id, repo.name, regions.current_key(), caller, False)
    rows = await records.described(db, call, *query.statement())
    if not rows:
        raise RepositoryNotFound(
            f"The repository with name '{repo.name}' does not exist in the registry with id "
            f"'{repo.registry_id}'",
            detail={"name": repo.name},
        )
    return [row for row in rows if row.digest is not None]
