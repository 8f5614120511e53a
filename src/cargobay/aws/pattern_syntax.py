"""The Java regex subset botocore's `pattern` constraints use, parsed into a small tree.

Tree nodes: ("char", CharSet), ("cat", [nodes]), ("alt", [nodes]), ("rep", node, min, max|None),
("bol",), ("eol",), ("look", negate, node). Java semantics: `\\w`, `\\d`, `\\s` are ASCII,
`\\p{L}` is a Unicode category, `.` excludes line terminators unless `(?s)`. Anything else
(back-references, atomic groups, possessive quantifiers, intersections, word boundaries, flags
other than a leading `(?s)`) raises PatternUnsupported rather than being matched wrongly.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

_LINE_ENDS = frozenset("\n\r\u0085\u2028\u2029")
_DIGITS = frozenset("0123456789")
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_SPACE = frozenset(" \t\n\x0b\f\r")
_SIMPLE_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f", "a": "\a", "e": "\x1b"}


class PatternUnsupported(ValueError):
    """A pattern construct this matcher does not implement."""


@dataclass(frozen=True)
class CharSet:
    """A character class: literal characters, ranges, Unicode categories, maybe negated."""

    chars: frozenset[str] = frozenset()
    ranges: tuple[tuple[int, int], ...] = ()
    categories: tuple[str, ...] = ()  # `\p{L}` -> "L", `\p{Lu}` -> "Lu"
    negated: bool = False
    subsets: tuple[CharSet, ...] = field(default=())

    def __contains__(self, ch: str) -> bool:
        hit = (
            ch in self.chars
            or any(lo <= ord(ch) <= hi for lo, hi in self.ranges)
            or (
                bool(self.categories) and unicodedata.category(ch).startswith(self.categories)  # type: ignore[arg-type]
            )
            or any(ch in sub for sub in self.subsets)
        )
        return hit != self.negated


ANY_BUT_NEWLINE = CharSet(chars=_LINE_ENDS, negated=True)
ANY = CharSet(negated=True)


class _Parser:
    """Recursive descent over the Java regex subset; nesting is bounded by MAX_DEPTH."""

    MAX_DEPTH = 50

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0
        self.dotall = False
        self.depth = 0
        if pattern.startswith("(?s)"):
            self.dotall = True
            self.pos = 4

    def fail(self, why: str) -> PatternUnsupported:
        return PatternUnsupported(f"{why} at {self.pos} in {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        if not ch:
            raise self.fail("unexpected end")
        self.pos += 1
        return ch

    def parse(self) -> tuple:
        node = self.alternation()
        if self.pos != len(self.text):
            raise self.fail("unbalanced ')'")
        return node

    def alternation(self) -> tuple:
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise self.fail("nesting too deep")
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        self.depth -= 1
        return options[0] if len(options) == 1 else ("alt", options)

    def sequence(self) -> tuple:
        items = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        return ("cat", items)

    def quantified(self, node: tuple) -> tuple:
        while True:
            ch = self.peek()
            if ch == "*":
                low, high = 0, None
            elif ch == "+":
                low, high = 1, None
            elif ch == "?":
                low, high = 0, 1
            elif ch == "{" and self._is_count():
                low, high = self._count()
                self.pos -= 1  # _count consumed the '}', the common step below skips it
            else:
                return node
            self.pos += 1
            if self.peek() == "+":
                raise self.fail("possessive quantifier")
            if self.peek() == "?":  # lazy: same strings match as a whole
                self.pos += 1
            node = ("rep", node, low, high)

    def _is_count(self) -> bool:
        end = self.text.find("}", self.pos)
        body = self.text[self.pos + 1 : end] if end > 0 else ""
        return bool(body) and all(c.isascii() and (c.isdigit() or c == ",") for c in body)

    def _count(self) -> tuple[int, int | None]:
        end = self.text.index("}", self.pos)
        low_text, comma, high_text = self.text[self.pos + 1 : end].partition(",")
        self.pos = end + 1
        if not low_text or len(low_text) > 4 or len(high_text) > 4:
            raise self.fail("bad repeat count")
        low = int(low_text)
        high = low if not comma else (int(high_text) if high_text else None)
        if high is not None and high < low:
            raise self.fail("bad repeat range")
        return low, high

    def atom(self) -> tuple:
        ch = self.take()
        if ch == "(":
            return self.group()
        if ch == "[":
            return ("char", self.char_class())
        if ch == ".":
            return ("char", ANY if self.dotall else ANY_BUT_NEWLINE)
        if ch == "^":
            return ("bol",)
        if ch == "$":
            return ("eol",)
        if ch == "\\":
            return self.escape_atom()
        if ch in "*+?":
            raise self.fail("nothing to repeat")
        return ("char", CharSet(chars=frozenset(ch)))

    def group(self) -> tuple:
        look = None
        if self.text.startswith("?:", self.pos):
            self.pos += 2
        elif self.text.startswith("?!", self.pos) or self.text.startswith("?=", self.pos):
            look = self.text[self.pos + 1] == "!"
            self.pos += 2
        elif (
            self.text.startswith("?<", self.pos)
            and self.text[self.pos + 2 : self.pos + 3] not in "=!"
        ):
            end = self.text.find(">", self.pos)
            if end < 0:
                raise self.fail("bad group name")
            self.pos = end + 1
        elif self.peek() == "?":
            raise self.fail("unsupported group")
        node = self.alternation()
        if self.take() != ")":
            raise self.fail("missing ')'")
        return node if look is None else ("look", look, node)

    def escape_atom(self) -> tuple:
        ch = self.peek()
        if ch in "bBAzZG" or (ch.isdigit() and ch != "0"):
            raise self.fail(f"unsupported escape \\{ch}")
        return ("char", self.escape_set())

    def escape_set(self) -> CharSet:
        """The class an escape denotes (`\\d`, `\\p{L}`, `\\u0020`, `\\.` ...)."""
        ch = self.take()
        classes = {"d": _DIGITS, "w": _WORD, "s": _SPACE}
        if ch.lower() in classes:
            return CharSet(chars=frozenset(classes[ch.lower()]), negated=ch.isupper())
        if ch in "pP":
            if self.take() != "{":
                raise self.fail("bad \\p")
            end = self.text.index("}", self.pos)
            name = self.text[self.pos : end].removeprefix("Is")
            self.pos = end + 1
            if not (1 <= len(name) <= 2 and name[0] in "LMNPSZC" and name.isalpha()):
                raise self.fail(f"unsupported property {name!r}")
            return CharSet(categories=(name,), negated=ch == "P")
        return CharSet(chars=frozenset(self.escape_char(ch)))

    def escape_char(self, ch: str) -> str:
        if ch == "u" or ch == "x":
            width = 4 if ch == "u" else 2
            digits = self.text[self.pos : self.pos + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise self.fail(f"bad \\{ch} escape")
            self.pos += width
            return chr(int(digits, 16))
        if ch in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[ch]
        if ch.isalnum():
            raise self.fail(f"unsupported escape \\{ch}")
        return ch

    def char_class(self) -> CharSet:
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        chars: set[str] = set()
        ranges: list[tuple[int, int]] = []
        subsets: list[CharSet] = []
        first = True
        while True:
            ch = self.take()
            if ch == "]" and not first:
                break
            first = False
            if ch == "[" or (ch == "&" and self.peek() == "&"):
                raise self.fail("nested class or intersection")
            if ch == "\\":
                if self.peek() in "dDwWsSpP":
                    subsets.append(self.escape_set())
                    continue
                ch = self.escape_char(self.take())
            if self.peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                high = self.take()
                if high == "\\":
                    high = self.escape_char(self.take())
                elif high == "[":
                    raise self.fail("nested class")
                if ord(high) < ord(ch):
                    raise self.fail("bad range")
                ranges.append((ord(ch), ord(high)))
            else:
                chars.add(ch)
        return CharSet(frozenset(chars), tuple(ranges), (), negated, tuple(subsets))


def parse(pattern: str) -> tuple:
    """The syntax tree of a pattern; raises PatternUnsupported."""
    return _Parser(pattern).parse()
