"""Work that must follow a committed change, written in the change's own transaction.

Events, replication, scans on push and signing all start from a push or a delete. Each
registers a hook here; the manifest and delete services call every hook inside their write
transaction, with that transaction's connection, so what a hook writes (an outbox row, a
task) commits or rolls back with the change itself: a crash never loses it, and a failed push
never starts it. Hooks only write rows; the slow work runs later from the task queue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cargobay.iam.principal import Principal
    from cargobay.metadata.conn import Conn
    from cargobay.registry.repositories import Repository

# Where a push came from: a client through a door, or the registry itself.
CLIENT = "client"
REPLICATION = "replication"
PULL_THROUGH_CACHE = "pull-through-cache"
REGISTRY = "registry"  # SBOMs, signatures and other artifacts cargobay attaches itself


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

    def on_push(self, hook: PushHook) -> PushHook:
        self.push.append(hook)
        return hook

    def on_delete(self, hook: DeleteHook) -> DeleteHook:
        self.delete.append(hook)
        return hook

    async def pushed(self, conn: Conn, event: Pushed) -> None:
        for hook in self.push:
            await hook(conn, event)

    async def deleted(self, conn: Conn, event: Deleted) -> None:
        for hook in self.delete:
            await hook(conn, event)
