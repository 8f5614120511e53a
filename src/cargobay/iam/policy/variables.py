"""Policy variables (``${aws:username}``, ``${key, 'default'}``) in policy strings.

:func:`_tokenize` splits a policy string into literal text, wildcards and variables; the
variables are resolved against the request's context at match time (:mod:`.patterns`).
"""

from __future__ import annotations

from dataclasses import dataclass

from cargobay.iam.policy.errors import PolicyError


@dataclass(frozen=True, slots=True)
class _Var:
    key: str  # lower-cased context key
    default: str | None


# A pattern part: ("lit", text) from the policy, ("star",), ("one",), or a _Var.
_Part = tuple[str, str] | tuple[str] | _Var


def _parse_variable(body: str) -> _Var | None:
    """`key` or `key, 'default'` (`''` is a quote inside the default), spaces allowed around
    each part; None when malformed. Parsed by hand: the regular expression this replaces
    backtracked quadratically on long bodies of spaces."""
    key, comma, rest = body.partition(",")
    key = key.strip()
    if not key or "'" in key:
        return None
    if not comma:
        return _Var(key.lower(), None)
    rest = rest.strip()
    if len(rest) < 2 or rest[0] != "'" or rest[-1] != "'":
        return None
    inner = rest[1:-1]
    if "'" in inner.replace("''", ""):
        return None
    return _Var(key.lower(), inner.replace("''", "'"))


def _tokenize(text: str, *, wildcards: bool, variables: bool, where: str) -> tuple[_Part, ...]:
    parts: list[_Part] = []
    literal: list[str] = []

    def flush() -> None:
        if literal:
            parts.append(("lit", "".join(literal)))
            literal.clear()

    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if variables and ch == "$" and text.startswith("${", i):
            end = text.find("}", i + 2)
            if end < 0:
                literal.append(ch)
                i += 1
                continue
            body = text[i + 2 : end]
            i = end + 1
            if body in ("*", "?", "$"):
                literal.append(body)
                continue
            variable = _parse_variable(body)
            if variable is None:
                raise PolicyError(f"{where} has an invalid policy variable ${{{body}}}")
            flush()
            parts.append(variable)
            continue
        if wildcards and ch == "*":
            flush()
            parts.append(("star",))
        elif wildcards and ch == "?":
            flush()
            parts.append(("one",))
        else:
            literal.append(ch)
        i += 1
    flush()
    return tuple(parts)
