"""Linear-time wildcard matching (``*`` and ``?``) for policies and lifecycle tag patterns.

A backtracking regular expression turns ``*a*a*a*b`` into polynomial (in practice exponential)
work per request, which lets one tenant's policy pin every worker. This matcher simulates the
pattern's NFA with bit sets instead (shift-and): one step per character of the subject, each
step a few big-integer operations, whatever the pattern. Several patterns can be compiled into
one :class:`GlobSet`, which still takes one step per character for all of them together.

Semantics are IAM's: ``*`` matches any run of characters (none included), ``?`` exactly one;
everything else, including text substituted for a policy variable, matches itself. A wildcard
may be *confined* (not match ``:``), which is how IAM treats wildcards in the first five ARN
segments (see :func:`arn_tokens`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["Glob", "GlobSet", "Token", "arn_tokens", "tokens"]


@dataclass(frozen=True, slots=True)
class Token:
    """One pattern element: a literal character, ``?`` (``one``) or ``*`` (``star``).

    ``confined`` wildcards do not match ``:``.
    """

    kind: str  # "lit", "one" or "star"
    char: str = ""
    confined: bool = False


def tokens(pattern: str, *, wildcards: bool = True) -> list[Token]:
    """``pattern`` as tokens; with ``wildcards=False`` every character is literal."""
    out: list[Token] = []
    for ch in pattern:
        if wildcards and ch == "*":
            out.append(Token("star"))
        elif wildcards and ch == "?":
            out.append(Token("one"))
        else:
            out.append(Token("lit", ch))
    return out


def arn_tokens(parts: Iterable[tuple[str, str]]) -> list[Token]:
    """Tokens for an ARN pattern given as ``(kind, text)`` parts, applying IAM's ARN rule.

    ``kind`` is ``"lit"`` (policy text, whose colons count segments), ``"val"`` (substituted
    text: literal, its colons do not count), ``"star"`` or ``"one"``. Before the fifth colon a
    ``?`` and a ``*`` inside a segment stay within the segment; a ``*`` that ends a segment (the
    next part starts with ``:`` or the pattern ends) may cross colons. In the resource segment
    wildcards match anything.
    """
    items = list(parts)
    out: list[Token] = []
    colons = 0
    for index, (kind, text) in enumerate(items):
        if kind in ("lit", "val"):
            out.extend(Token("lit", ch) for ch in text)
            if kind == "lit":
                colons += text.count(":")
            continue
        if colons >= 5:
            out.append(Token(kind))
        elif kind == "one":
            out.append(Token("one", confined=True))
        else:
            following = items[index + 1] if index + 1 < len(items) else None
            ends_segment = following is None or (
                following[0] == "lit" and following[1].startswith(":")
            )
            out.append(Token("star", confined=not ends_segment))
    return out


class GlobSet:
    """Several wildcard patterns matched together in one linear pass.

    Each pattern's literal and ``?`` tokens are its states, one bit each after a start bit:
    bit ``i`` set means "the pattern's first ``i`` such tokens matched the text read so far".
    A ``*`` is a self-loop on the state before it (it stays put on any character, or any but
    ``:`` when confined). Reading a character moves every state one bit on where the next token
    accepts the character and keeps the states that loop, so a step is a few big-integer
    operations whatever the pattern. Start bits are never the target of a move, so patterns
    laid end to end in one integer do not leak into each other.

    A pattern's leading literal text (``arn:aws:ecr:<region>:<account>:repository/`` for most
    resources) is compared with ``startswith`` instead: its start bit joins the state only at
    that offset, and only if the text starts with it. The literal text all patterns end with is
    compared with ``endswith``. Neither ever costs a state.
    """

    __slots__ = (
        "_accept",
        "_any",
        "_done",
        "_ignore_case",
        "_loop",
        "_starts",
        "_suffix",
        "_table",
        "size",
    )

    def __init__(self, patterns: Sequence[Sequence[Token]], *, ignore_case: bool = False) -> None:
        self._ignore_case = ignore_case
        fold = str.lower if ignore_case else str
        heads = [_leading_literal(p) for p in patterns]
        self._suffix = fold(
            _common_literal([list(p[h:])[::-1] for p, h in zip(patterns, heads, strict=True)])[::-1]
        )
        end = len(self._suffix)
        table: dict[str, int] = {}
        starts: dict[str, int] = {}
        any_char = any_but_colon = loop_any = loop_but_colon = 0
        accept = 0
        bit = 0
        for pattern, head in zip(patterns, heads, strict=True):
            prefix = fold("".join(t.char for t in pattern[:head]))
            starts[prefix] = starts.get(prefix, 0) | 1 << bit
            for token in pattern[head : len(pattern) - end]:
                if token.kind == "star":
                    if token.confined:
                        loop_but_colon |= 1 << bit
                    else:
                        loop_any |= 1 << bit
                    continue
                bit += 1
                mask = 1 << bit
                if token.kind == "lit":
                    char = token.char.lower() if ignore_case else token.char
                    table[char] = table.get(char, 0) | mask
                elif token.confined:
                    any_but_colon |= mask
                else:
                    any_char |= mask
            accept |= 1 << bit
            bit += 1
        self.size = bit
        self._starts = sorted(starts.items(), key=lambda item: len(item[0]))
        self._any = any_char | any_but_colon
        self._loop = loop_any | loop_but_colon
        # Per character: the states it can move into, and the states whose loop it keeps.
        self._table = {
            char: (mask | any_char, loop_any) if char == ":" else (mask | self._any, self._loop)
            for char, mask in table.items()
        }
        self._table.setdefault(":", (any_char, loop_any))
        self._accept = accept
        self._done = accept & loop_any  # a pattern ending in `*` that got there has matched

    def run(self, text: str) -> tuple[bool, int]:
        """Whether any pattern matches the whole of ``text``, and the steps it took (one per
        character read; the loop stops early once the answer is known)."""
        if self._ignore_case:
            text = text.lower()
        if self._suffix:
            if not text.endswith(self._suffix):
                return False, 0
            text = text[: len(text) - len(self._suffix)]
        starts = [(len(p), mask) for p, mask in self._starts if text.startswith(p)]
        if not starts:
            return False, 0
        table, default, done = self._table, (self._any, self._loop), self._done
        pending = len(starts)
        k = 0
        state = 0
        position = next_start = starts[0][0]
        steps = 0
        for char in text[position:]:
            if position == next_start:
                while k < pending and starts[k][0] == position:
                    state |= starts[k][1]
                    k += 1
                next_start = starts[k][0] if k < pending else -1
            if state & done:
                return True, steps
            if not state and next_start < 0:
                return False, steps
            steps += 1
            position += 1
            moves, loops = table.get(char, default)
            state = ((state << 1) & moves) | (state & loops)
        for _, mask in starts[k:]:  # prefixes as long as the text itself
            state |= mask
        return bool(state & self._accept), steps

    def matches(self, text: str) -> bool:
        return self.run(text)[0]


def _leading_literal(pattern: Sequence[Token]) -> int:
    """How many literal tokens `pattern` starts with."""
    count = 0
    for token in pattern:
        if token.kind != "lit":
            break
        count += 1
    return count


def _common_literal(patterns: list[list[Token]]) -> str:
    """The literal characters all `patterns` begin with (none if there are no patterns)."""
    if not patterns:
        return ""
    common: list[str] = []
    for tokens_at in zip(*patterns, strict=False):
        first = tokens_at[0]
        if first.kind != "lit" or any(t.kind != "lit" or t.char != first.char for t in tokens_at):
            break
        common.append(first.char)
    return "".join(common)


class Glob:
    """One wildcard pattern; literal and ``*``-only shapes skip the state machine."""

    __slots__ = ("_exact", "_ignore_case", "_set", "_star")

    def __init__(self, pattern: Sequence[Token], *, ignore_case: bool = False) -> None:
        self._ignore_case = ignore_case
        self._exact: str | None = None
        self._star = False
        self._set: GlobSet | None = None
        if all(t.kind == "lit" for t in pattern):
            text = "".join(t.char for t in pattern)
            self._exact = text.lower() if ignore_case else text
        elif all(t.kind == "star" and not t.confined for t in pattern):
            self._star = True
        else:
            self._set = GlobSet([pattern], ignore_case=ignore_case)

    def run(self, text: str) -> tuple[bool, int]:
        if self._set is not None:
            return self._set.run(text)
        if self._star:
            return True, 0
        return (text.lower() if self._ignore_case else text) == self._exact, 1

    def matches(self, text: str) -> bool:
        return self.run(text)[0]
