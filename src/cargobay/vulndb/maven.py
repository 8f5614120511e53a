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


def _cmp(a: object, b: object) -> int:
    """Compare two items; None stands for a missing one (compared as "release"/0)."""
    if a is None:
        return -_cmp(b, None) if b is not None else 0
    if isinstance(a, _Int):
        if b is None:
            return 0 if a == 0 else 1
        if isinstance(b, _Int):
            return (a > b) - (a < b)
        return 1  # integers beat qualifiers and sub-lists
    if isinstance(a, _Str):
        if b is None:
            ka, kb = _qualifier_key(a), _RELEASE
        elif isinstance(b, _Str):
            ka, kb = _qualifier_key(a), _qualifier_key(b)
        else:
            return -1
        return (ka > kb) - (ka < kb)
    assert isinstance(a, _List)
    if b is None:
        return _cmp(a[0], None) if a else 0
    if isinstance(b, _Int):
        return -1
    if isinstance(b, _Str):
        return 1
    for i in range(max(len(a), len(b))):
        result = _cmp(a[i] if i < len(a) else None, b[i] if i < len(b) else None)
        if result:
            return result
    return 0


def maven_compare(a: str, b: str) -> int:
    return _cmp(parse(a), parse(b))
