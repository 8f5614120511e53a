"""A forward-only tar reader: members as they stream past, their data read or skipped.

The standard library's `tarfile` in stream mode works too, but this reader skips member data
in large reads without building objects per block, which keeps a scan close to the speed of
inflate itself. It understands ustar, GNU long names and PAX path/size/linkpath records.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from cargobay.scanning.errors import LayerError
from cargobay.scanning.stream import READ_SIZE, Readable

BLOCK = 512

REGULAR = "file"
DIRECTORY = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
OTHER = "other"

_TYPES = {
    b"0": REGULAR,
    b"\0": REGULAR,
    b"7": REGULAR,
    b"5": DIRECTORY,
    b"2": SYMLINK,
    b"1": HARDLINK,
}


@dataclass(slots=True)
class Member:
    path: str  # normalized: no leading "./" or "/", no trailing "/"
    kind: str
    size: int
    mode: int
    linkname: str


def normalize(path: str) -> str:
    path = posixpath.normpath("/" + path).lstrip("/")
    return "" if path == "." else path


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for large values
        value = field[0] & 0x7F
        for byte in field[1:]:
            value = (value << 8) | byte
        return value
    text = field.rstrip(b"\0 ").lstrip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError as exc:
        raise LayerError("the layer is not a tar stream (bad header)") from exc


def _pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            break
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class TarReader:
    """Iterate `members()`; while on a member, `read_data(limit)` or `chunks()` its bytes.
    Whatever is not read is skipped when the iteration moves on."""

    def __init__(self, source: Readable) -> None:
        self._source = source
        self._buf = b""
        self._pos = 0
        self._remaining = 0  # unread data bytes of the current member
        self._padding = 0

    def _fill(self, n: int) -> bytes:
        """Exactly n bytes (or fewer at the end of the stream)."""
        have = len(self._buf) - self._pos
        if have >= n:
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos :]]
        while have < n:
            chunk = self._source.read(max(READ_SIZE, n - have))
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        joined = b"".join(parts)
        self._buf, self._pos = joined[n:], 0
        return joined[:n]

    def _skip(self, n: int) -> None:
        have = len(self._buf) - self._pos
        if have >= n:
            self._pos += n
            return
        n -= have
        self._buf, self._pos = b"", 0
        while n > 0:
            chunk = self._source.read(READ_SIZE)
            if not chunk:
                raise LayerError("the layer's tar stream is truncated")
            if len(chunk) > n:
                self._buf, self._pos = chunk, n
                return
            n -= len(chunk)

    def chunks(self) -> Iterator[bytes]:
        """The current member's remaining data, chunk by chunk."""
        while self._remaining > 0:
            have = len(self._buf) - self._pos
            if have == 0:
                self._buf, self._pos = self._source.read(READ_SIZE), 0
                have = len(self._buf)
                if have == 0:
                    raise LayerError("the layer's tar stream is truncated")
            take = min(have, self._remaining)
            out = self._buf[self._pos : self._pos + take]
            self._pos += take
            self._remaining -= take
            yield out

    def read_data(self, limit: int) -> bytes | None:
        """The current member's data, or None (and skipped) when it is larger than `limit`."""
        if self._remaining > limit:
            return None
        return b"".join(self.chunks())

    def members(self) -> Iterator[Member]:
        long_name: str | None = None
        long_link: str | None = None
        pax: dict[str, str] = {}
        while True:
            self._skip(self._remaining + self._padding)
            self._remaining = self._padding = 0
            header = self._fill(BLOCK)
            if len(header) < BLOCK or header == bytes(BLOCK):
                return  # end-of-archive blocks (or a stream cut at a block boundary)
            if _octal(header[148:156]) != sum(header[:148]) + 256 + sum(header[156:]):
                raise LayerError("the layer is not a tar stream (header checksum)")
            size = _octal(header[124:136])
            typeflag = header[156:157]
            self._remaining = size
            self._padding = -size % BLOCK
            if typeflag in (b"L", b"K", b"x", b"g"):
                data = self.read_data(1024 * 1024) or b""
                if typeflag == b"L":
                    long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                elif typeflag == b"K":
                    long_link = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
                elif typeflag == b"x":
                    pax = _pax(data)
                continue
            name = header[0:100].split(b"\0", 1)[0]
            if header[257:262] == b"ustar" and header[345]:
                name = header[345:500].split(b"\0", 1)[0] + b"/" + name
            path = long_name or pax.get("path") or name.decode("utf-8", "surrogateescape")
            link = (
                long_link
                or pax.get("linkpath")
                or header[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            )
            if "size" in pax:
                self._remaining = int(pax["size"])
                self._padding = -self._remaining % BLOCK
            long_name = long_link = None
            pax = {}
            kind = _TYPES.get(typeflag, OTHER)
            if kind == REGULAR and path.endswith("/"):
                kind = DIRECTORY
            if kind != REGULAR and kind != HARDLINK:
                self._skip(self._remaining)  # only regular files carry data we read
                self._remaining = 0
            yield Member(normalize(path), kind, self._remaining, _octal(header[100:108]), link)
