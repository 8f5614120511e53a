"""An image's inventory from its manifest, config and layer blobs, streamed in order."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from cargobay.scanning import inventory
from cargobay.scanning.errors import UnsupportedImage
from cargobay.scanning.layers import Inspector, MergedTree
from cargobay.scanning.mediatypes import IMAGE_CONFIGS, INDEXES
from cargobay.scanning.model import Inventory
from cargobay.scanning.stream import ChunkPipe, decompressed
from cargobay.threads import ProcessPool, settle

# Reads a blob's bytes by digest, as BlobStore.read does.
BlobReader = Callable[[str], AsyncIterator[bytes]]


# Layer walks run here: one thread per concurrent scan, so scans never crowd request threads.
_threads = ProcessPool(2, "scan")


def image_layers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's layer descriptors, bottom first; refuses what is not an image."""
    if manifest.get("mediaType") in INDEXES or "manifests" in manifest:
        raise UnsupportedImage("an image index: scan each platform's manifest")
    config = manifest.get("config")
    if not isinstance(config, dict) or config.get("mediaType") not in IMAGE_CONFIGS:
        raise UnsupportedImage("not a container image (an artifact or unknown config type)")
    layers = manifest.get("layers")
    if not isinstance(layers, list) or not all(
        isinstance(layer, dict) and isinstance(layer.get("digest"), str) for layer in layers
    ):
        raise UnsupportedImage("the manifest has no valid layer list")
    return layers


def architecture(config_bytes: bytes) -> str:
    try:
        config = json.loads(config_bytes)
    except ValueError as exc:
        raise UnsupportedImage("the image config is not JSON") from exc
    return str(config.get("architecture") or "") if isinstance(config, dict) else ""


async def apply_layer(
    tree: MergedTree, chunks: AsyncIterator[bytes], inspect: Inspector = inventory.inspect
) -> int:
    """Merge one layer blob into the tree (in a thread); the compressed bytes read."""
    pipe = ChunkPipe()
    pump = asyncio.create_task(pipe.pump(chunks))
    job = _threads.get().submit(lambda: tree.apply(decompressed(pipe), inspect))
    try:
        await asyncio.wrap_future(job)
    finally:
        pump.cancel()  # unblocks the thread if this scan was cancelled mid-layer
        await settle(job)
        await asyncio.gather(pump, return_exceptions=True)
    return pipe.bytes_read


async def build_inventory(
    read_blob: BlobReader, manifest: dict[str, Any], config_bytes: bytes
) -> Inventory:
    """Walk every layer in order and list what the merged file system has installed."""
    layers = image_layers(manifest)
    arch = architecture(config_bytes)
    tree = MergedTree()
    for layer in layers:
        await apply_layer(tree, read_blob(layer["digest"]))
    return inventory.collect(tree, arch)
