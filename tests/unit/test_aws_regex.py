"""The linear-time matcher for botocore's Java patterns."""

from __future__ import annotations

import random
import re

import pytest

from cargobay.aws import generate, regex, shapes

# ECR's ScanningRepositoryFilterValue: catastrophic for a backtracking engine.
NESTED = r"^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$"


def _model_patterns() -> list[str]:
    found = set()
    for service in generate.SERVICES:
        found |= {s["pattern"] for s in shapes.load(service).shapes.values() if "pattern" in s}
    return sorted(found)


def test_agrees_with_re_on_every_model_pattern() -> None:
    """Where Python's `re` can compile the pattern (with Java's ASCII `\\w`), both agree."""
    rng = random.Random(7)
    alphabet = "aZ09-_./:*@=+,!\n \té?"
    compared = 0
    for pattern in _model_patterns():
        try:
            reference = re.compile(pattern, re.ASCII)
        except re.error:
            continue
        ours = regex.compile_pattern(pattern)
        for _ in range(400):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            if rng.random() < 0.3:
                text = "arn:aws:kms:us-east-1:123456789012:key/" + text
            assert ours.fullmatch(text) == bool(reference.fullmatch(text)), (pattern, text)
            compared += 1
    assert compared > 10_000


def test_catastrophic_pattern_is_linear() -> None:
    ours = regex.compile_pattern(NESTED)
    assert not ours.fullmatch("a" * 250 + "!")
    assert ours.fullmatch("a" * 255)
    assert ours.fullmatch("a.b/c*d")
    # Each input character costs at most one pass over the program's states.
    assert len(ours.prog) < 40


def test_fullmatch_not_match() -> None:
    digits = regex.compile_pattern("[0-9]{12}")
    assert digits.fullmatch("123456789012")
    assert not digits.fullmatch("123456789012\n")
    assert not regex.compile_pattern("^[a-z]+$").fullmatch("abc\n")


def test_unicode_properties_and_java_classes() -> None:
    tag = regex.compile_pattern(r"[\p{L}\p{Z}\p{N}_.:/=+\-@]+")
    assert tag.fullmatch("Équipe 7 日本")
    assert not tag.fullmatch("a!b")
    assert not tag.fullmatch("")
    word = regex.compile_pattern(r"[\w+=,.@-]+")
    assert word.fullmatch("alice_1@x.y")
    assert not word.fullmatch("élise")  # Java's \w is ASCII
    look = regex.compile_pattern(r"^(?!aws:)[a-zA-Z+-=._:/]+$")
    assert look.fullmatch("mykey") and not look.fullmatch("aws:key")


@pytest.mark.parametrize(
    "pattern", [r"(a)\1", r"(?>a)", r"a++", r"[a-z&&[^b]]", r"\bword", r"(?i)a", "a{99999}"]
)
def test_unsupported_constructs_are_refused(pattern: str) -> None:
    with pytest.raises(regex.PatternUnsupported):
        regex.compile_pattern(pattern)


def test_answers_for_short_texts_are_remembered_and_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(regex, "MAX_ANSWERS", 3)
    pattern = regex.Pattern(r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*")
    assert pattern._fast is None  # the DFA path, where answers are remembered
    assert pattern.fullmatch("team/app") is True
    assert pattern.fullmatch("team//app") is False
    # Asked again, each gives the same answer, now from the memo.
    assert pattern._answers == {"team/app": True, "team//app": False}
    assert pattern.fullmatch("team/app") is True
    assert pattern.fullmatch("team//app") is False
    pattern.fullmatch("a")
    pattern.fullmatch("b")  # the fourth answer: the memo starts over
    assert len(pattern._answers) <= 3
    long_text = "a" * (regex.MAX_ANSWERED_TEXT + 1)
    assert pattern.fullmatch(long_text) is True
    assert long_text not in pattern._answers
