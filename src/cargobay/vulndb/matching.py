"""Is a version affected? OSV's range semantics, evaluated with an ecosystem's order.

Within a range, events are applied in version order: `introduced` opens an affected interval,
`fixed` closes it before the fixed version, `last_affected` closes it after that version;
`limit` events cap the whole range. A version named in `versions` is affected too.
"""

from __future__ import annotations

import functools

from cargobay.vulndb.versions import Compare

_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}


def _in_range(version: str, events: list[dict[str, str]], compare: Compare) -> bool:
    limits = [e["limit"] for e in events if "limit" in e]
    if limits and not any(lim == "*" or compare(version, lim) < 0 for lim in limits):
        return False
    steps = [(kind, value) for e in events for kind, value in e.items() if kind != "limit"]

    def order(a: tuple[str, str], b: tuple[str, str]) -> int:
        if a[1] == "0" or b[1] == "0":  # introduced "0": before everything
            return (b[1] == "0") - (a[1] == "0") or _ORDER[a[0]] - _ORDER[b[0]]
        return compare(a[1], b[1]) or _ORDER[a[0]] - _ORDER[b[0]]

    affected = False
    for kind, value in sorted(steps, key=functools.cmp_to_key(order)):
        if kind == "introduced":
            if value == "0" or compare(version, value) >= 0:
                affected = True
        elif kind == "fixed":
            if compare(version, value) >= 0:
                affected = False
        elif kind == "last_affected" and compare(version, value) > 0:
            affected = False
    return affected


def is_affected(
    version: str, ranges: list[list[dict[str, str]]], versions: list[str], compare: Compare
) -> bool:
    """Raises ValueError when a version cannot be ordered in the ecosystem."""
    if version in versions:
        return True
    return any(_in_range(version, events, compare) for events in ranges)
