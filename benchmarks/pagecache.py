"""Page-cache state of a registry's data for the pull scenarios: evicting it ("cold"),
measuring it (`fincore`), and making sure a "warm" run really is warm.

Why a warm run is checked before it is timed: on this machine a file's pages do not stay
cached just because nothing else needs the memory. The VM's kernel runs DAMON with a
`pageout` scheme (`/sys/kernel/mm/damon/admin/kdamonds/0`: physical regions not accessed for
12 aggregation intervals of 5 s are paged out, 128 MiB per second at most), and any other
benchmark on the machine may drop the whole page cache (`benchmarks.run` writes
`/proc/sys/vm/drop_caches` before scenarios that want a fresh cache). A 1 GiB blob read once
was measured gone 10-15 s later, and between two back-to-back GETs of two registries (09:20 UTC,
load 6) one registry's file went from 1,024 MiB cached to 0: a "warm" sample of either
registry could read from disk. So every warm sample states its file's residency, and is
re-warmed (an untimed GET) until it is fully cached.

"Cold" means: `sync`, then `posix_fadvise(POSIX_FADV_DONTNEED)` on every file under the
registry's work dir, for each registry alike (clean pages only, hence the sync). It needs no
root and leaves the rest of the shared machine's page cache alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from benchmarks.config import MiB
from benchmarks.registries import Registry

COLD_METHOD = "sync + posix_fadvise(DONTNEED) on every file of the registry's data dir"
DAMON = Path("/sys/kernel/mm/damon/admin/kdamonds/0")


def data_dir(registry: Registry) -> Path:
    """Everything the registry stores (its data, database and log) is under here."""
    return registry.workdir


def files(root: Path) -> list[Path]:
    return [Path(d) / f for d, _, names in os.walk(root) for f in names]


def evict(registries: list[Registry]) -> None:
    """Push every file of the registries' data out of the page cache (see the docstring)."""
    os.sync()
    for registry in registries:
        for path in files(data_dir(registry)):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def resident_mib(registry: Registry, size: int | None = None) -> float | None:
    """MiB of the registry's data files in the page cache (`fincore`), only of the files of
    `size` bytes when given (a blob's); None without fincore."""
    found = [p for p in files(data_dir(registry)) if _size(p) and size in (None, _size(p))]
    if not found or shutil.which("fincore") is None:
        return None
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--raw", "-o", "RES", *map(str, found)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return sum(int(x) for x in out.stdout.split() if x.isdigit()) / MiB


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def damon_paged_out_mib() -> float | None:
    """MiB DAMON's pageout scheme has reclaimed since boot (None where there is none): the
    difference across a run says whether the kernel evicted pages while it ran."""
    try:
        (DAMON / "state").write_text("update_schemes_stats\n")
        stats = DAMON / "contexts/0/schemes/0/stats/sz_applied"
        return int(stats.read_text()) / MiB
    except OSError:
        return None
