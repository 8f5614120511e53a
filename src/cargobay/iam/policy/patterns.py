"""Wildcard and ARN matching of policy strings (``Action``, ``Resource``, string conditions).

Patterns are compiled once at parse time into :mod:`cargobay.wildcards` matchers, so a request
is matched in linear time however hostile the policy's patterns are.
"""

from __future__ import annotations

from collections.abc import Sequence

from cargobay.iam.policy.request import _Context
from cargobay.iam.policy.variables import _Part, _tokenize, _Var
from cargobay.wildcards import GlobSet, Token, arn_tokens


class _Pattern:
    """A policy string compiled once into a linear-time wildcard matcher (:mod:`wildcards`).

    ``arn=True`` applies IAM's ARN rule to patterns that start with ``arn:`` (see
    :func:`wildcards.arn_tokens`). Text substituted for a policy variable is always literal.
    """

    __slots__ = ("_arn", "_ignore_case", "_parts", "_static", "text")

    def __init__(
        self,
        text: str,
        *,
        wildcards: bool,
        variables: bool,
        ignore_case: bool = False,
        arn: bool = False,
        where: str = "",
    ) -> None:
        self.text = text
        self._parts = _tokenize(text, wildcards=wildcards, variables=variables, where=where)
        self._arn = arn and text.startswith("arn:")
        self._ignore_case = ignore_case
        self._static = (
            None if any(isinstance(p, _Var) for p in self._parts) else self._tokens(self._parts)
        )

    def _tokens(self, parts: Sequence[_Part]) -> list[Token]:
        pairs: list[tuple[str, str]] = []
        for part in parts:
            if isinstance(part, _Var):  # pragma: no cover - resolved before compiling
                raise AssertionError("unresolved policy variable")
            pairs.append((part[0], part[1] if len(part) > 1 else ""))  # type: ignore[misc]
        if self._arn:
            return arn_tokens(pairs)
        out: list[Token] = []
        for kind, text in pairs:
            if kind in ("lit", "val"):
                out.extend(Token("lit", ch) for ch in text)
            else:
                out.append(Token(kind))
        return out

    @property
    def static(self) -> bool:
        return self._static is not None

    def tokens(self, ctx: _Context | None) -> list[Token] | None:
        """The pattern's tokens, or None when a policy variable has no value and no default."""
        if self._static is not None:
            return self._static
        resolved: list[_Part] = []
        for part in self._parts:
            if isinstance(part, _Var):
                value = ctx.scalar(part.key) if ctx is not None else None
                if value is None:
                    value = part.default
                if value is None:
                    return None
                resolved.append(("val", value))
            else:
                resolved.append(part)
        return self._tokens(resolved)

    def matches(self, value: str, ctx: _Context | None) -> bool:
        return _AnyOf((self,)).matches(value, ctx)

    def __repr__(self) -> str:
        return f"_Pattern({self.text!r})"


class _AnyOf:
    """Whether a value matches any of several patterns: the static ones are compiled into one
    :class:`GlobSet` up front (one linear pass for all of them); patterns with policy variables
    are resolved and compiled per request."""

    __slots__ = ("_dynamic", "_ignore_case", "_static")

    def __init__(self, patterns: Sequence[_Pattern]) -> None:
        self._ignore_case = any(p._ignore_case for p in patterns)
        static = [p.tokens(None) for p in patterns if p.static]
        self._static = (
            GlobSet([t for t in static if t is not None], ignore_case=self._ignore_case)
            if static
            else None
        )
        self._dynamic = tuple(p for p in patterns if not p.static)

    def run(self, value: str, ctx: _Context | None) -> tuple[bool, int]:
        """The answer and the matcher's step count (for tests of the linear bound)."""
        steps = 0
        if self._static is not None:
            hit, steps = self._static.run(value)
            if hit:
                return True, steps
        if self._dynamic:
            resolved = [t for t in (p.tokens(ctx) for p in self._dynamic) if t is not None]
            if resolved:
                hit, more = GlobSet(resolved, ignore_case=self._ignore_case).run(value)
                return hit, steps + more
        return False, steps

    def matches(self, value: str, ctx: _Context | None) -> bool:
        return self.run(value, ctx)[0]
