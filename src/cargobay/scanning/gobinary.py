"""Go module build info from ELF binaries, read as the file streams past.

Go 1.18+ writes a `\\xff Go buildinf:` header, 16-byte aligned, at the start of the first
writable (non-executable) PT_LOAD segment, followed inline by the Go version and the module
info (`path`, `mod`, `dep` lines). The program headers are within the first few KiB, so only
the ELF header area and a bounded window (2 MiB) of the data segment are ever kept. Older binaries
(pointers instead of inline strings) are reported by their notes only.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from cargobay.scanning.model import GOLANG, FileResult, Package
from cargobay.scanning.tar import Member, TarReader

MAGIC = b"\xff Go buildinf:"
HEAD = 64 * 1024  # ELF header and program headers must lie within this
# Go's own reader searches the data segment's first 64 KiB when a binary has no section table;
# externally linked binaries can put other sections first, so this looks further.
SEARCH = 1024 * 1024
WINDOW = SEARCH + 1024 * 1024  # plus the inline module info after the header
PT_LOAD, PF_X, PF_W = 1, 1, 2


def data_segment_offset(head: bytes) -> int | None:
    """File offset of the first writable, non-executable PT_LOAD segment; None when there is
    none (or not an ELF file); -1 when `head` is too short to tell yet."""
    if len(head) < 64:
        return -1 if b"\x7fELF".startswith(head[:4]) else None
    if not head.startswith(b"\x7fELF"):
        return None
    is64, end = head[4] == 2, "<" if head[5] == 1 else ">"
    if is64:
        (phoff,) = struct.unpack_from(end + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
    else:
        (phoff,) = struct.unpack_from(end + "I", head, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
    if phoff + phnum * phentsize > len(head):
        return -1 if len(head) < HEAD else None
    for i in range(phnum):
        pos = phoff + i * phentsize
        if is64:
            p_type, p_flags, p_offset = struct.unpack_from(end + "IIQ", head, pos)
        else:
            p_type, p_offset = struct.unpack_from(end + "II", head, pos)
            p_flags = struct.unpack_from(end + "I", head, pos + 24)[0]
        if p_type == PT_LOAD and p_flags & (PF_X | PF_W) == PF_W:
            return p_offset
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise ValueError("truncated varint")


def parse_buildinfo(window: bytes) -> tuple[str, str] | None:
    """(Go version, module info text) from the data segment's first bytes, or None."""
    pos = window.find(MAGIC)
    while pos >= 0 and pos % 16:
        pos = window.find(MAGIC, pos + 1)
    if pos < 0 or pos > SEARCH or pos + 32 > len(window):
        return None
    flags = window[pos + 15]
    if not flags & 2:
        return None  # pre-1.18 pointer format
    try:
        length, at = _varint(window, pos + 32)
        version = window[at : at + length].decode("utf-8", "replace")
        length, at = _varint(window, at + length)
        if at + length > len(window):
            return None
        modinfo = window[at : at + length]
    except ValueError:
        return None
    if len(modinfo) >= 33 and modinfo[-17] == ord("\n"):
        modinfo = modinfo[16:-16]  # the sentinels around the text
    return version, modinfo.decode("utf-8", "replace")


def modules(modinfo: str, path: str) -> list[Package]:
    """The main module (when it has a real version) and every dependency, replacements
    resolved (`=>` lines replace the `dep` line before them)."""
    found: list[Package] = []
    for line in modinfo.splitlines():
        fields = line.split("\t")
        if fields[0] in ("mod", "dep") and len(fields) >= 3:
            if fields[0] == "mod" and fields[2] in ("(devel)", ""):
                continue
            found.append(Package(GOLANG, fields[1], fields[2], path=path))
        elif fields[0] == "=>" and len(fields) >= 3 and found:
            found[-1] = Package(GOLANG, fields[1], fields[2], path=path)
    return found


def _window(chunks: Iterator[bytes]) -> bytes | None:
    """Up to WINDOW bytes from the data segment's start, gathered while streaming, or None."""
    head = b""  # the file's first bytes, until the segment is known
    offset = 0  # file offset of the current chunk
    start = -1
    window: list[bytes] = []
    size = 0
    for chunk in chunks:
        if start < 0:
            head += chunk[: HEAD - len(head)]
            start_now = data_segment_offset(head)
            if start_now is None:
                return None
            if start_now >= 0:
                start = start_now
                if start < offset:  # every earlier byte is in `head`
                    window.append(head[start:offset])
                    size = len(window[0])
        if start >= 0 and offset + len(chunk) > start:
            begin = max(0, start - offset)
            piece = chunk[begin : begin + WINDOW - size]
            window.append(piece)
            size += len(piece)
            if size >= WINDOW:
                break
        offset += len(chunk)
    return b"".join(window) if window else None


def inspect_binary(member: Member, reader: TarReader) -> FileResult | None:
    window = _window(reader.chunks())
    if window is None:
        return None
    info = parse_buildinfo(window)
    if info is None:
        return None
    version, modinfo = info
    packages = modules(modinfo, member.path)
    packages.append(Package(GOLANG, "stdlib", version.removeprefix("go"), path=member.path))
    return FileResult(packages=packages)
