"""The media types that tell an image from other artifacts. Their own module so that push
hooks (scans/service.py) can check them without loading the scanning engine."""

from __future__ import annotations

IMAGE_CONFIGS = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
INDEXES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
