"""One module per group of ECR actions; importing them registers them with `ecr.api`."""

from cargobay.ecr.actions import (
    auth,
    images,
    layers,
    lifecycle,
    policies,
    pullthrough,
    pulltime,
    replication,
    repositories,
    scanning,
    signing,
    storage,
)

__all__ = [
    "auth",
    "images",
    "layers",
    "lifecycle",
    "policies",
    "pullthrough",
    "pulltime",
    "replication",
    "repositories",
    "scanning",
    "signing",
    "storage",
]
