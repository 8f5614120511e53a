"""Layer streaming: compressions, tar dialects, and whiteouts applied across layers."""

from __future__ import annotations

import asyncio
import gzip
import os
import tarfile

import pytest
from layerkit import Entry, compress, layer, tar_bytes

from cargobay.scanning.errors import LayerError
from cargobay.scanning.layers import MergedTree
from cargobay.scanning.model import FileResult
from cargobay.scanning.tar import Member, TarReader
from cargobay.scanning.walk import apply_layer


def record_contents(member: Member, reader: TarReader) -> FileResult | None:
    """Every regular file, with its data (or its size when large) as a note."""
    if member.kind != "file":
        return None
    data = reader.read_data(1024)
    return FileResult(notes=[data.decode() if data is not None else f"{member.size} bytes"])


async def _chunks(blob: bytes, size: int):
    for start in range(0, len(blob), size):
        yield blob[start : start + size]


def merged(*blobs: bytes, chunk: int = 4096) -> dict[str, list[str]]:
    async def run() -> MergedTree:
        tree = MergedTree()
        for blob in blobs:
            await apply_layer(tree, _chunks(blob, chunk), record_contents)
        return tree

    tree = asyncio.run(run())
    return {path: result.notes for path, result in tree.files.items()}


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("chunk", [1, 511, 65536])
def test_compressions_and_chunkings_read_the_same_files(compression: str, chunk: int) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB, skipped past
    files = {"./etc/hostname": b"box\n", "usr/big.bin": big, "/abs/path": b"x"}
    blob = layer(files, compression)
    if chunk == 1:
        blob = layer({"./etc/hostname": b"box\n"}, compression)
        assert merged(blob, chunk=chunk) == {"etc/hostname": ["box\n"]}
        return
    assert merged(blob, chunk=chunk) == {
        "etc/hostname": ["box\n"],
        "usr/big.bin": [f"{len(big)} bytes"],
        "abs/path": ["x"],
    }


def test_long_names_gnu_and_pax() -> None:
    deep = "usr/" + "/".join(["d" * 60] * 5) + "/file.txt"
    for pax in (False, True):
        assert merged(layer({deep: b"deep", "short": b"s"}, pax=pax)) == {
            deep: ["deep"],
            "short": ["s"],
        }


def test_multi_member_gzip_is_read_to_the_end() -> None:
    raw = tar_bytes({"a": b"1", "b": b"2" * 5000})
    blob = gzip.compress(raw[:700]) + gzip.compress(raw[700:])
    assert merged(blob) == {"a": ["1"], "b": ["5000 bytes"]}


def test_truncated_and_garbage_layers_raise_layer_errors() -> None:
    blob = layer({"a": b"x" * 100_000}, "gzip")
    with pytest.raises(LayerError):
        merged(blob[: len(blob) // 2])
    with pytest.raises(LayerError):
        merged(b"this is not a tar stream at all" * 40)
    with pytest.raises(LayerError):
        merged(b"\x28\xb5\x2f\xfd" + b"\0garbage" * 10)


def test_whiteouts_delete_files_and_directories_of_lower_layers() -> None:
    base = layer(
        {
            "app/keep": b"k",
            "app/gone": b"g",
            "app/dir/a": b"a",
            "app/dir/sub/b": b"b",
            "opq/old": b"o",
            "replaced": b"v1",
        }
    )
    upper = layer(
        {
            "app/.wh.gone": b"",
            "app/.wh.dir": b"",
            "opq/new": b"n",  # the same layer's own files survive its opaque whiteout
            "opq/.wh..wh..opq": b"",
            "replaced": b"v2",
        }
    )
    assert merged(base, upper) == {
        "app/keep": ["k"],
        "opq/new": ["n"],
        "replaced": ["v2"],
    }


def test_a_file_replaced_by_a_symlink_or_directory_is_gone() -> None:
    base = layer({"etc/os-release": b"ID=x\n", "x": b"1"})
    upper = layer(
        {
            "etc/os-release": Entry(kind=tarfile.SYMTYPE, linkname="../usr/lib/os-release"),
            "x": Entry(kind=tarfile.DIRTYPE, mode=0o755),
        }
    )
    assert merged(base, upper) == {}


def test_a_later_layer_can_restore_a_whited_out_path() -> None:
    assert merged(layer({"a/b": b"1"}), layer({".wh.a": b""}), layer({"a/b": b"3"})) == {
        "a/b": ["3"]
    }


def test_uncompressed_bytes_after_the_archive_end_are_ignored() -> None:
    blob = tar_bytes({"a": b"1"}) + b"\0" * 10240
    assert merged(compress(blob, "none")) == {"a": ["1"]}


def test_a_cancelled_scan_releases_its_thread_and_a_failing_read_propagates() -> None:
    blob = layer({"a": os.urandom(200_000)}, "gzip")  # incompressible: many chunks

    async def stalled(data: bytes):
        yield data[:1000]
        await asyncio.Event().wait()  # the store never sends the rest

    async def failing(data: bytes):
        yield data[:1000]
        raise OSError("the blob store failed")

    async def scenario() -> dict[str, list[str]]:
        for _ in range(3):  # more than the scan thread pool has threads
            task = asyncio.create_task(apply_layer(MergedTree(), stalled(blob), record_contents))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        with pytest.raises(OSError, match="blob store failed"):
            await asyncio.wait_for(apply_layer(MergedTree(), failing(blob), record_contents), 10)
        tree = MergedTree()
        await asyncio.wait_for(apply_layer(tree, _chunks(blob, 4096), record_contents), 10)
        return {path: result.notes for path, result in tree.files.items()}

    assert asyncio.run(scenario()) == {"a": ["200000 bytes"]}


def test_zstd_layers_of_several_frames() -> None:
    import zstandard

    raw = tar_bytes({"a": b"1", "b": os.urandom(70_000)})
    compressor = zstandard.ZstdCompressor(level=1)
    blob = compressor.compress(raw[:5000]) + compressor.compress(raw[5000:])
    assert merged(blob) == {"a": ["1"], "b": ["70000 bytes"]}
