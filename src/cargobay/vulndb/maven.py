"""Maven version order (the rules of Maven's ComparableVersion).

A version is a list of items split at `.`, `-` and digit/letter transitions; `-` (and a
transition) opens a sub-list. Integers compare numerically and beat qualifiers; known
qualifiers order as alpha < beta < milestone < rc < snapshot < release < sp, and unknown ones
sort after all of them, alphabetically. Trailing "null" items (0, "", ga, final, release) do not
count, so 1.0 == 1 == 1-ga.
"""

from __future__ import annotations

_QUALIFIERS = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"]
_ALIASES = {"ga": "", "final": "", "release": "", "cr": "rc"}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE = str(_QUALIFIERS.index(""))


def _qualifier_key(value: str) -> str:
    if value in _QUALIFIERS:
        return str(_QUALIFIERS.index(value))
    return f"{len(_QUALIFIERS)}-{value}"


class _Int(int):
    pass


class _Str(str):
    pass


class _List(list):
    pass


def _string_item(value: str, followed_by_digit: bool) -> _Str:
    if followed_by_digit and len(value) == 1:
        value = _SHORT.get(value, value)
    return _Str(_ALIASES.get(value, value))


def _item(is_digit: bool, text: str) -> _Int | _Str:
    return _Int(int(text)) if is_digit else _string_item(text, False)


def _is_null(item: object) -> bool:
    if isinstance(item, _Int):
        return item == 0
    if isinstance(item, _Str):
        return _qualifier_key(item) == _RELEASE
    return isinstance(item, _List) and not item


def _normalize(items: _List) -> None:
    for i in range(len(items) - 1, -1, -1):
        if _is_null(items[i]):
            del items[i]
        elif not isinstance(items[i], _List):
            break


def parse(version: str) -> _List:
    version = version.strip().lower()
    root = current = _List()
    stack = [root]
    is_digit = False
    start = 0

    def push() -> None:
        nonlocal current
        sub = _List()
        current.append(sub)
        current = sub
        stack.append(sub)

    for i, c in enumerate(version):
        if c in ".-":
            current.append(_Int(0) if i == start else _item(is_digit, version[start:i]))
            start = i + 1
            if c == "-":
                push()
        elif c.isdigit():
            if not is_digit and i > start:
                current.append(_string_item(version[start:i], True))
                start = i
                push()
            is_digit = True
        else:
            if is_digit and i > start:
                current.append(_item(True, version[start:i]))
                start = i
                push()
            is_digit = False
    if len(version) > start:
        current.append(_item(is_digit, version[start:]))
    while stack:
        _normalize(stack.pop())
    return root


def _sign(items: list) -> int:
    """Where a sequence sits relative to "nothing more" (0, release): -1 below, 0 equal, 1 above."""
    for item in items:
        if isinstance(item, _Int):
            sign = 1 if item else 0
        elif isinstance(item, _Str):
            key = _qualifier_key(item)
            sign = (key > _RELEASE) - (key < _RELEASE)
        else:
            sign = _sign(item)
        if sign:
            return sign
    return 0


_TYPE_RANK = {_Str: 0, _List: 1, _Int: 2}


def _cmp(a: list, b: list) -> int:
    """Compare two item sequences (a version, or what follows a position in it).

    Maven compares item by item, and its rules (integers beat sub-lists beat qualifiers, a
    missing item counts as 0 or release) are not transitive: `0.alpha`, `0` and `0-x` form a
    cycle. Comparing what is left of each version against "nothing more" first, and only then
    item by item with Maven's type rules, is a total order that keeps every order Maven gives
    consistently, so sorting and range checks stay sound.
    """
    i = 0
    while True:
        ta, tb = a[i:], b[i:]
        sa, sb = _sign(ta), _sign(tb)
        if sa != sb:
            return (sa > sb) - (sa < sb)
        if sa == 0:
            return 0
        x, y = ta[0], tb[0]
        ra, rb = _TYPE_RANK[type(x)], _TYPE_RANK[type(y)]
        if ra != rb:
            return (ra > rb) - (ra < rb)
        if isinstance(x, _Int):
            result = (x > y) - (x < y)
        elif isinstance(x, _Str):
            kx, ky = _qualifier_key(x), _qualifier_key(y)
            result = (kx > ky) - (kx < ky)
        else:
            result = _cmp(x, y)
        if result:
            return result
        i += 1


def maven_compare(a: str, b: str) -> int:
    return _cmp(parse(a), parse(b))
