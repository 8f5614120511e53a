"""Linear-time matching of botocore's (Java-flavoured) `pattern` constraints.

Why not `re`: botocore patterns are Java regexes, and some are catastrophic for a backtracking
engine: ECR's `ScanningRepositoryFilterValue`, `^[a-z0-9*](?:[._\\-/a-z0-9*]?[a-z0-9*]+)*$`,
takes minutes in `re.fullmatch` on 24 letters and a `!`. Java also has what `re` lacks
(`\\p{L}`) and means other things by `\\w` (ASCII only). So the pattern is parsed here (the Java
subset the models use) into a Thompson NFA and run as a lazily built DFA: time linear in the
input, whatever the pattern. Whole-string semantics (`matches()` in Java, `fullmatch` in Python).

Unsupported constructs (back-references, atomic groups, possessive quantifiers, intersections,
word boundaries) raise `PatternUnsupported` at compile time; the tests assert no botocore
pattern in the shipped tables does.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

# Instructions: (op, a, b). CHAR a=CharSet; SPLIT a,b=targets; JMP a; LOOK a=(negate, Program).
CHAR, SPLIT, JMP, BOL, EOL, LOOK, MATCH = range(7)
MAX_PROGRAM = 20_000
MAX_CACHE = 8192
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


class _Compiler:
    def __init__(self) -> None:
        self.prog: list[tuple] = []

    def emit(self, op: int, a=None, b=None) -> int:
        if len(self.prog) >= MAX_PROGRAM:
            raise PatternUnsupported("pattern too large once repeats are expanded")
        self.prog.append((op, a, b))
        return len(self.prog) - 1

    def patch(self, at: int, a=None, b=None) -> None:
        op, old_a, old_b = self.prog[at]
        self.prog[at] = (op, old_a if a is None else a, old_b if b is None else b)

    def node(self, node: tuple) -> None:
        kind = node[0]
        if kind == "char":
            self.emit(CHAR, node[1])
        elif kind == "cat":
            for item in node[1]:
                self.node(item)
        elif kind == "alt":
            jumps = []
            for option in node[1][:-1]:
                split = self.emit(SPLIT)
                self.node(option)
                jumps.append(self.emit(JMP))
                self.patch(split, split + 1, len(self.prog))
            self.node(node[1][-1])
            for jump in jumps:
                self.patch(jump, len(self.prog))
        elif kind == "rep":
            _, body, low, high = node
            for _ in range(low):
                self.node(body)
            if high is None:
                split = self.emit(SPLIT)
                self.node(body)
                self.emit(JMP, split)
                self.patch(split, split + 1, len(self.prog))
            else:
                splits = []
                for _ in range(high - low):
                    splits.append(self.emit(SPLIT))
                    self.node(body)
                for split in splits:
                    self.patch(split, split + 1, len(self.prog))
        elif kind == "bol":
            self.emit(BOL)
        elif kind == "eol":
            self.emit(EOL)
        elif kind == "look":
            sub = _Compiler()
            sub.node(node[2])
            sub.emit(MATCH)
            self.emit(LOOK, (node[1], tuple(sub.prog)))


class Pattern:
    """A compiled botocore pattern; `fullmatch(text)` in time linear in `len(text)`."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        tree = _Parser(pattern).parse()
        # One repeated class (`[...]+`, the common case, up to 2 MiB policy documents): `re`
        # runs it in linear time too, and in C.
        self._fast = _single_class_run(tree)
        compiler = _Compiler()
        compiler.node(tree)
        compiler.emit(MATCH)
        self.prog = tuple(compiler.prog)
        self.has_lookaround = any(op == LOOK for op, _, _ in self.prog)
        self._cache: dict[tuple[frozenset[int], str, bool], frozenset[int]] = {}

    def fullmatch(self, text: str) -> bool:
        if self._fast is not None:
            return self._fast.fullmatch(text) is not None
        end = len(text)
        states = _closure(self.prog, (0,), text, 0)
        for pos, ch in enumerate(text):
            if not states:
                return False
            key = (states, ch, pos + 1 == end)
            cached = None if self.has_lookaround else self._cache.get(key)
            if cached is None:
                cached = _closure(self.prog, _step(self.prog, states, ch), text, pos + 1)
                if not self.has_lookaround:
                    if len(self._cache) >= MAX_CACHE:
                        self._cache.clear()
                    self._cache[key] = cached
            states = cached
        return any(self.prog[pc][0] == MATCH for pc in states)


def _single_class_run(tree: tuple) -> re.Pattern[str] | None:
    """`re` for a pattern that is one repeated class of plain characters, else None."""
    items = [item for item in tree[1] if item[0] not in ("bol", "eol")] if tree[0] == "cat" else []
    if len(items) != 1 or items[0][0] != "rep" or items[0][1][0] != "char":
        return None
    if [i for i, item in enumerate(tree[1]) if item[0] == "bol"] not in ([], [0]):
        return None
    if [i for i, item in enumerate(tree[1]) if item[0] == "eol"] not in ([], [len(tree[1]) - 1]):
        return None
    _, (_, charset), low, high = items[0]
    chars, ranges = set(charset.chars), list(charset.ranges)
    for sub in charset.subsets:
        if sub.negated or sub.categories or sub.subsets or sub.ranges:
            return None
        chars |= sub.chars
    if charset.categories or not (chars or ranges):
        return None
    body = "".join(re.escape(c) for c in sorted(chars))
    body += "".join(f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for lo, hi in ranges)
    count = f"{{{low},{'' if high is None else high}}}"
    return re.compile(f"[{'^' if charset.negated else ''}{body}]{count}", re.DOTALL)


def _step(prog: tuple, states: frozenset[int], ch: str) -> list[int]:
    return [pc + 1 for pc in states if prog[pc][0] == CHAR and ch in prog[pc][1]]


def _closure(prog: tuple, starts, text: str, pos: int) -> frozenset[int]:
    """The CHAR and MATCH instructions reachable from `starts` without consuming input."""
    stack = list(starts)
    seen: set[int] = set()
    out: set[int] = set()
    while stack:
        pc = stack.pop()
        if pc in seen:
            continue
        seen.add(pc)
        op, a, b = prog[pc]
        if op in (CHAR, MATCH):
            out.add(pc)
        elif op == JMP:
            stack.append(a)
        elif op == SPLIT:
            stack.extend((b, a))
        elif op == BOL:
            if pos == 0:
                stack.append(pc + 1)
        elif op == EOL:
            if pos == len(text):
                stack.append(pc + 1)
        elif op == LOOK:
            negate, sub = a
            if _prefix_match(sub, text, pos) != negate:
                stack.append(pc + 1)
    return frozenset(out)


def _prefix_match(prog: tuple, text: str, pos: int) -> bool:
    """Whether `prog` matches some prefix of `text[pos:]` (a lookahead)."""
    states = _closure(prog, (0,), text, pos)
    while True:
        if any(prog[pc][0] == MATCH for pc in states):
            return True
        if not states or pos >= len(text):
            return False
        states = _closure(prog, _step(prog, states, text[pos]), text, pos + 1)
        pos += 1


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> Pattern:
    """The compiled pattern (cached); raises PatternUnsupported."""
    return Pattern(pattern)
