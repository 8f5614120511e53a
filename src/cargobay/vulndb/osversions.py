"""Version ordering of the OS package managers: dpkg, RPM (rpmvercmp and EVR) and apk.

Each follows the rules its package manager documents, so "is the installed version below the
fix" gives the answer the distribution's own tools would.
"""

from __future__ import annotations

import re

_DIGITS = frozenset("0123456789")
_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


# -- dpkg (deb-version(7)) ---------------------------------------------------------------------


def _dpkg_order(c: str) -> int:
    if c in _DIGITS:
        return 0
    if c in _LETTERS:
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def _dpkg_part(a: str, b: str) -> int:
    """dpkg's verrevcmp: alternate non-digit runs (letters before non-letters, `~` before
    everything, even the end) and numeric runs (compared as numbers)."""
    i = j = 0
    while i < len(a) or j < len(b):
        while (i < len(a) and a[i] not in _DIGITS) or (j < len(b) and b[j] not in _DIGITS):
            ac = _dpkg_order(a[i]) if i < len(a) else 0
            bc = _dpkg_order(b[j]) if j < len(b) else 0
            if ac != bc:
                return _sign(ac - bc)
            i += 1
            j += 1
        start_a = i
        while i < len(a) and a[i] in _DIGITS:
            i += 1
        start_b = j
        while j < len(b) and b[j] in _DIGITS:
            j += 1
        na, nb = int(a[start_a:i] or 0), int(b[start_b:j] or 0)
        if na != nb:
            return _sign(na - nb)
    return 0


def split_dpkg(version: str) -> tuple[int, str, str]:
    """(epoch, upstream version, Debian revision)."""
    epoch = 0
    if ":" in version:
        head, _, version = version.partition(":")
        epoch = int(head) if head.isdigit() else 0
    upstream, dash, revision = version.rpartition("-")
    if not dash:
        return epoch, version, ""
    return epoch, upstream, revision


def dpkg_compare(a: str, b: str) -> int:
    ea, ua, ra = split_dpkg(a.strip())
    eb, ub, rb = split_dpkg(b.strip())
    if ea != eb:
        return _sign(ea - eb)
    return _dpkg_part(ua, ub) or _dpkg_part(ra, rb)


# -- RPM (rpmvercmp) ---------------------------------------------------------------------------


def rpmvercmp(a: str, b: str) -> int:
    """Alphanumeric segments compared in turn; numbers beat letters; `~` sorts before
    anything (pre-releases), `^` after the end but before any further segment."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        while i < len(a) and not (a[i] in _DIGITS or a[i] in _LETTERS or a[i] in "~^"):
            i += 1
        while j < len(b) and not (b[j] in _DIGITS or b[j] in _LETTERS or b[j] in "~^"):
            j += 1
        ta, tb = a[i : i + 1], b[j : j + 1]
        if ta == "~" or tb == "~":
            if ta != "~":
                return 1
            if tb != "~":
                return -1
            i, j = i + 1, j + 1
            continue
        if ta == "^" or tb == "^":
            if not ta:
                return -1
            if not tb:
                return 1
            if ta != "^":
                return 1
            if tb != "^":
                return -1
            i, j = i + 1, j + 1
            continue
        if not ta or not tb:
            break
        kind = _DIGITS if ta in _DIGITS else _LETTERS
        si, sj = i, j
        while i < len(a) and a[i] in kind:
            i += 1
        while j < len(b) and b[j] in kind:
            j += 1
        sa, sb = a[si:i], b[sj:j]
        if not sb:  # segments of different kinds: numbers are newer
            return 1 if kind is _DIGITS else -1
        if kind is _DIGITS:
            sa, sb = sa.lstrip("0"), sb.lstrip("0")
            if len(sa) != len(sb):
                return _sign(len(sa) - len(sb))
        if sa != sb:
            return 1 if sa > sb else -1
    if i >= len(a) and j >= len(b):
        return 0
    return -1 if i >= len(a) else 1


def split_evr(evr: str) -> tuple[int, str, str | None]:
    epoch = 0
    if ":" in evr:
        head, _, evr = evr.partition(":")
        epoch = int(head) if head.isdigit() else 0
    version, dash, release = evr.rpartition("-")
    return (epoch, version, release) if dash else (epoch, evr, None)


def rpm_compare(a: str, b: str) -> int:
    """EVR order; a release is compared only when both sides have one (as rpm does)."""
    ea, va, ra = split_evr(a.strip())
    eb, vb, rb = split_evr(b.strip())
    if ea != eb:
        return _sign(ea - eb)
    result = rpmvercmp(va, vb)
    if result or ra is None or rb is None:
        return result
    return rpmvercmp(ra, rb)


# -- apk (apk-version(5)) ----------------------------------------------------------------------

_APK = re.compile(r"^(\d+(?:\.\d+)*)([a-z]?)((?:_[a-z]+\d*)*)(?:-r(\d+))?$")
_APK_SUFFIX = re.compile(r"_([a-z]+)(\d*)")
# Pre-release suffixes sort before the plain release (rank 4), the others after it.
_SUFFIX_RANK = {
    "alpha": 0,
    "beta": 1,
    "pre": 2,
    "rc": 3,
    "cvs": 5,
    "svn": 6,
    "git": 7,
    "hg": 8,
    "p": 9,
}


def _apk_key(version: str) -> tuple:
    match = _APK.match(version.strip())
    if not match:
        raise ValueError(f"not an apk version: {version!r}")
    numbers, letter, suffixes, revision = match.groups()
    parts = numbers.split(".")
    # After the first, a component with a leading zero compares as a decimal fraction.
    numeric = [(int(parts[0]), "")] + [
        (0, p.rstrip("0") or "0") if p.startswith("0") else (int(p), "") for p in parts[1:]
    ]
    ranked = [(_SUFFIX_RANK.get(name, 4), int(n or 0)) for name, n in _APK_SUFFIX.findall(suffixes)]
    return numeric, letter, ranked, int(revision or 0)


def _compare_lists(a: list, b: list, pad: object) -> int:
    for x, y in zip(a + [pad] * (len(b) - len(a)), b + [pad] * (len(a) - len(b)), strict=True):
        if x != y:
            return 1 if x > y else -1
    return 0


def apk_compare(a: str, b: str) -> int:
    na, la, sa, ra = _apk_key(a)
    nb, lb, sb, rb = _apk_key(b)
    for x, y in zip(na, nb, strict=False):
        if x != y:
            return 1 if x > y else -1
    if len(na) != len(nb):
        return 1 if len(na) > len(nb) else -1
    if la != lb:
        return 1 if la > lb else -1
    return _compare_lists(sa, sb, (4, 0)) or _sign(ra - rb)
