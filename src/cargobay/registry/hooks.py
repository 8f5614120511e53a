"""Work that must follow a committed change, written in the change's own transaction.

Events, replication, scans on push and signing all start from a push or a delete. Each
registers a hook here; the manifest and delete services call every hook inside their write
transaction, with that transaction's connection, so what a hook writes (an outbox row, a
task) commits or rolls back with the change itself: a crash never loses it, and a failed push
never starts it. Hooks only write rows; the slow work runs later from the task queue.

What hooks need to know about the registry's configuration (event targets, replication,
signing, scan on push) is read once per push, in one statement inside the push's transaction:
each hook registers the scalar subqueries it needs (`on_push(hook, reads=...)`), and the hooks
find the values in `Pushed.settings`. A configuration change applies to the very next push on
every node, as if each hook had read it itself, for one statement instead of one each.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, select

from cargobay import regions

if TYPE_CHECKING:
    from cargobay.iam.principal import Principal
    from cargobay.metadata.conn import Conn
    from cargobay.registry.repositories import Repository

# Where a push came from: a client through a door, or the registry itself.
CLIENT = "client"
REPLICATION = "replication"
PULL_THROUGH_CACHE = "pull-through-cache"
REGISTRY = "registry"  # SBOMs, signatures and other artifacts cargobay attaches itself

# The bound parameters of every push read: the pushed repository's registry (account) id and
# region key (`cargobay.regions.key`): registry-level settings are per account and region.
PUSHED_REGISTRY = bindparam("pushed_registry_id", type_=String)
PUSHED_REGION = bindparam("pushed_region", type_=String)


@dataclass(frozen=True, slots=True)
class Pushed:
    """A manifest (and maybe a tag) that a push committed."""

    repo: Repository
    digest: str
    tag: str | None
    media_type: str
    artifact_type: str | None
    subject: str | None
    # False when the repository already held this manifest (a re-push or a new tag only).
    created: bool
    origin: str = CLIENT
    # A replica from another deployment completing its image there (origin "replication"):
    # the source's account and region, for the destination's `ECR Replication Action`.
    replica_of: ReplicaSource | None = None
    # Who pushed through a door (managed signing signs as them); None for the registry's own.
    pusher: Principal | None = None
    # What the hooks' registered reads found, in the push's transaction (see the module's
    # note); empty when the hooks are called without them, and a hook then reads for itself.
    settings: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class ReplicaSource:
    """Where a replicated image came from: the source registry's account and region."""

    account: str
    region: str


@dataclass(frozen=True, slots=True)
class Deleted:
    """An image a delete removed (`digest` gone), or a tag it removed (`untagged_only`)."""

    repo: Repository
    digest: str
    tag: str | None
    untagged_only: bool = False
    # "client" for a delete through a door, "lifecycle" for a lifecycle expiry.
    origin: str = CLIENT
    # The tags the delete removed with the image (empty for `untagged_only`: that is `tag`).
    tags: tuple[str, ...] = ()
    # The lifecycle rule that expired the image (origin "lifecycle" only).
    rule_priority: int | None = None


PushHook = Callable[["Conn", Pushed], Awaitable[None]]
DeleteHook = Callable[["Conn", Deleted], Awaitable[None]]


class Hooks:
    """The hooks one process runs; services are built with one shared instance."""

    def __init__(self) -> None:
        self.push: list[PushHook] = []
        self.delete: list[DeleteHook] = []
        # name -> scalar subquery (bound to PUSHED_REGISTRY) read for every push.
        self.push_reads: dict[str, Any] = {}
        self._settings_query: Any = None
        # id(statement) -> the statement with the push reads beside its columns (`widened`).
        self._widened: dict[int, Any] = {}

    def on_push(self, hook: PushHook, reads: Mapping[str, Any] | None = None) -> PushHook:
        """Run `hook` in every push's transaction; `reads` (name -> a scalar subquery that
        binds `PUSHED_REGISTRY`) are read for it first, with every other hook's, in one
        statement, into `Pushed.settings`."""
        if reads:
            clash = self.push_reads.keys() & reads.keys()
            if clash:
                raise ValueError(f"push reads registered twice: {sorted(clash)}")
            self.push_reads.update(reads)
            self._settings_query = None
            self._widened = {}
        self.push.append(hook)
        return hook

    def on_delete(self, hook: DeleteHook) -> DeleteHook:
        self.delete.append(hook)
        return hook

    def widened(self, statement: Any) -> Any:
        """`statement` (a SELECT of the push, built once) with the push reads as labelled
        columns beside its own, bound to `PUSHED_REGISTRY` as `settings_params` gives it: a
        push that reads them so passes `settings` to `pushed`, one statement fewer. Built
        once per statement (and again after a registration)."""
        found = self._widened.get(id(statement))
        if found is None:
            columns = (read.label(name) for name, read in self.push_reads.items())
            found = self._widened[id(statement)] = statement.add_columns(*columns)
        return found

    @staticmethod
    def settings_params(registry_id: str, region_key: str | None = None) -> dict[str, Any]:
        """The push reads' parameters; `region_key` defaults to the request's region's."""
        if region_key is None:
            region_key = regions.current_key()
        return {"pushed_registry_id": registry_id, "pushed_region": region_key}

    def settings_of(self, row: Any) -> Mapping[str, Any]:
        """The push reads' values in a row of a `widened` statement (a Row, or a named
        tuple of the driver's, `metadata.hotwrite.HotSelect`)."""
        return {name: getattr(row, name) for name in self.push_reads}

    async def pushed(
        self, conn: Conn, event: Pushed, settings: Mapping[str, Any] | None = None
    ) -> None:
        """Run the push hooks; `settings`: the push reads, when the push read them already
        (`widened`), in this transaction."""
        if self.push_reads:
            if settings is None:
                settings = await self._settings(conn, event)
            if event.settings is not settings:  # else the caller built the event with them
                event = dataclasses.replace(event, settings=settings)
        for hook in self.push:
            await hook(conn, event)

    async def _settings(self, conn: Conn, event: Pushed) -> Mapping[str, Any]:
        # Built once (and again after a registration): a reused statement's cache key is
        # memoized, so SQLAlchemy neither rebuilds nor re-keys it on every push.
        if self._settings_query is None:
            self._settings_query = select(
                *(read.label(name) for name, read in self.push_reads.items())
            )
        params = self.settings_params(event.repo.registry_id, event.repo.region_key)
        row = (await conn.execute(self._settings_query, params)).one()
        return dict(row._mapping)

    async def deleted(self, conn: Conn, event: Deleted) -> None:
        for hook in self.delete:
            await hook(conn, event)
