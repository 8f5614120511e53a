"""The scanner's domain errors (the doors translate them to protocol errors)."""

from __future__ import annotations


class ScanError(Exception):
    """A scan could not complete."""


class LayerError(ScanError):
    """A layer is not a readable (optionally gzip- or zstd-compressed) tar stream."""


class UnsupportedImage(ScanError):
    """The manifest is not a container image (an artifact, or an index: scan each platform)."""
