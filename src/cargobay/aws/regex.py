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
from functools import lru_cache

from cargobay.aws.pattern_syntax import CharSet, PatternUnsupported, parse

__all__ = ["CharSet", "Pattern", "PatternUnsupported", "compile_pattern", "parse"]

# Instructions: (op, a, b). CHAR a=CharSet; SPLIT a,b=targets; JMP a; LOOK a=(negate, Program).
CHAR, SPLIT, JMP, BOL, EOL, LOOK, MATCH = range(7)
MAX_PROGRAM = 20_000
MAX_CACHE = 8192
# Answers remembered per pattern for texts this short (names, tags, digests: what requests
# repeat), at most MAX_ANSWERS of them (under 300 KiB a pattern): a walk of the DFA costs
# ~0.15 µs per character.
MAX_ANSWERED_TEXT = 256
MAX_ANSWERS = 1024


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
        tree = parse(pattern)
        # One repeated class (`[...]+`, the common case, up to 2 MiB policy documents): `re`
        # runs it in linear time too, and in C.
        self._fast = _single_class_run(tree)
        compiler = _Compiler()
        compiler.node(tree)
        compiler.emit(MATCH)
        self.prog = tuple(compiler.prog)
        self.has_lookaround = any(op == LOOK for op, _, _ in self.prog)
        self._cache: dict[tuple[frozenset[int], str, bool], frozenset[int]] = {}
        self._answers: dict[str, bool] = {}

    def fullmatch(self, text: str) -> bool:
        if self._fast is not None:
            return self._fast.fullmatch(text) is not None
        answer = self._answers.get(text)
        if answer is None:
            answer = self._run(text)
            if len(text) <= MAX_ANSWERED_TEXT:
                if len(self._answers) >= MAX_ANSWERS:
                    self._answers.clear()
                self._answers[text] = answer
        return answer

    def _run(self, text: str) -> bool:
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
