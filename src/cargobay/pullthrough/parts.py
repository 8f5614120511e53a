"""What the pull-through cache's manifest side (`cache`) and blob side (`blobs`) share, built
once by `PullThroughCache` and handed to both, so neither repeats the other's constructor."""

from __future__ import annotations

from dataclasses import dataclass

from cargobay.config import Settings
from cargobay.metadata.db import Database
from cargobay.metadata.leases import Leases
from cargobay.pullthrough.access import CacheAccess
from cargobay.pullthrough.clients import UpstreamClients
from cargobay.registry.blobs import BlobService
from cargobay.storage import BlobStore


@dataclass(frozen=True, slots=True)
class CacheParts:
    db: Database
    settings: Settings
    store: BlobStore
    blobs: BlobService
    leases: Leases
    clients: UpstreamClients
    access: CacheAccess
