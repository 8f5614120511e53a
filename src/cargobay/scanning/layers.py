"""The image's file system as the layers build it: what each interesting file contributes,
with later layers replacing files and whiteouts deleting them (OCI image spec, "Whiteouts").

Only the results of interesting files are kept (a few packages per path), never file data, so
tracking the merged tree costs a dictionary entry per package database, not per file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable

from cargobay.scanning.model import FileResult
from cargobay.scanning.stream import Readable
from cargobay.scanning.tar import Member, TarReader

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"

# Given a member and the reader positioned on it, what the file contributes (or None).
Inspector = Callable[[Member, TarReader], FileResult | None]


class MergedTree:
    """Results per path across the layers applied so far."""

    def __init__(self) -> None:
        self.files: dict[str, FileResult] = {}

    def apply(self, layer: Readable, inspect: Inspector) -> None:
        """Walk one layer's tar stream and merge it over the layers below."""
        added: dict[str, FileResult] = {}
        replaced: set[str] = set()
        deleted: list[str] = []  # whited-out paths (and everything under them)
        opaque: list[str] = []  # directories whose lower contents are hidden
        reader = TarReader(layer)
        for member in reader.members():
            directory, base = posixpath.split(member.path)
            if base == OPAQUE:
                opaque.append(directory)
                continue
            if base.startswith(WHITEOUT):
                deleted.append(posixpath.join(directory, base[len(WHITEOUT) :]))
                continue
            if member.path in self.files:
                replaced.add(member.path)
            result = inspect(member, reader)
            if result is not None:
                added[member.path] = result
        self._merge(added, replaced, deleted, opaque)

    def _merge(
        self,
        added: dict[str, FileResult],
        replaced: set[str],
        deleted: list[str],
        opaque: list[str],
    ) -> None:
        # A layer's whiteouts hide what is below it, never what the layer itself adds.
        prefixes = tuple(path + "/" for path in deleted) + tuple(
            (directory + "/" if directory else "") for directory in opaque
        )
        gone = set(deleted) | replaced
        for path in list(self.files):
            if path in gone or (prefixes and path.startswith(prefixes)):
                del self.files[path]
        self.files.update(added)
