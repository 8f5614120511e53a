"""The linear-time wildcard matcher (cargobay.wildcards) and its use by the policy engine and
lifecycle tag patterns: same answers as a regular expression, and a step count that grows with
the subject alone, never with the number of wildcards (the ReDoS of issue 11)."""

from __future__ import annotations

import itertools
import json
import random
import re

import pytest

from cargobay.iam.policy import AuthRequest, _AnyOf, _Pattern, parse_policy, statement_effect
from cargobay.lifecycle.policy import parse_policy as parse_lifecycle
from cargobay.wildcards import Glob, GlobSet, arn_tokens, tokens

ACCOUNT = "000000000000"
REPO_ARN = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/" + "a" * 200  # a 247-char-ish name
EVIL = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/*a*a*a*a*a*a*b"


def reference(pattern: str, text: str, *, ignore_case: bool = False) -> bool:
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.fullmatch(body, text, flags) is not None


def arn_reference(pattern: str, text: str) -> bool:
    """The regex the policy engine used before (IAM's ARN rule), as the oracle."""
    out: list[str] = []
    colons = 0
    for i, ch in enumerate(pattern):
        if ch not in "*?":
            out.append(re.escape(ch))
            colons += ch == ":"
        elif colons >= 5:
            out.append(".*" if ch == "*" else ".")
        elif ch == "?":
            out.append("[^:]")
        else:
            nxt = pattern[i + 1 : i + 2]
            out.append(".*" if nxt in ("", ":") else "[^:]*")
    return re.fullmatch("".join(out), text, re.DOTALL) is not None


def test_agrees_with_regex_on_every_small_case() -> None:
    for p_len in range(5):
        for pattern in map("".join, itertools.product("a*?", repeat=p_len)):
            glob = Glob(tokens(pattern))
            for t_len in range(5):
                for text in map("".join, itertools.product("ab", repeat=t_len)):
                    assert glob.matches(text) == reference(pattern, text), (pattern, text)


def test_a_set_matches_when_any_member_does() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        patterns = ["".join(rng.choice("ab*?") for _ in range(rng.randint(0, 5))) for _ in "xyz"]
        text = "".join(rng.choice("ab") for _ in range(rng.randint(0, 7)))
        expected = any(reference(p, text) for p in patterns)
        assert GlobSet([tokens(p) for p in patterns]).matches(text) == expected, (patterns, text)


def test_arn_rule_agrees_with_the_previous_engine() -> None:
    rng = random.Random(5)
    alphabet = ["a", ":", "*", "?", "/"]
    for _ in range(5000):
        pattern = "arn:" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9)))
        text = "arn:" + "".join(rng.choice("a:/") for _ in range(rng.randint(0, 9)))
        glob = Glob(arn_tokens(_parts(pattern)))
        assert glob.matches(text) == arn_reference(pattern, text), (pattern, text)


def _parts(pattern: str) -> list[tuple[str, str]]:
    parts: list[tuple[str, str]] = []
    for ch in pattern:
        if ch in "*?":
            parts.append(("star" if ch == "*" else "one", ""))
        elif parts and parts[-1][0] == "lit":
            parts[-1] = ("lit", parts[-1][1] + ch)
        else:
            parts.append(("lit", ch))
    return parts


def test_ignore_case_and_literal_metacharacters() -> None:
    assert Glob(tokens("ECR:Batch*"), ignore_case=True).matches("ecr:batchgetimage")
    assert not Glob(tokens("ecr:Batch*")).matches("ecr:batchgetimage")
    assert Glob(tokens("(x)+.[")).matches("(x)+.[")
    assert not Glob(tokens("a.c")).matches("abc")


def test_steps_are_one_per_character_whatever_the_wildcards() -> None:
    """The issue's pattern took 5.3 s with 4 stars and x50 per extra star; here the step count
    is at most the subject's length for any number of stars."""
    for stars in range(1, 40):
        pattern = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/" + "*a" * stars + "*b"
        matched, steps = Glob(arn_tokens(_parts(pattern))).run(REPO_ARN)
        assert not matched
        assert steps <= len(REPO_ARN)


def test_worst_legal_repository_policy_is_linear() -> None:
    """A repository policy at ECR's 10,240-character cap, every Resource a wildcard-heavy
    pattern, costs one pass over the repository ARN for the whole statement."""
    resources: list[str] = []
    statement = {"Effect": "Deny", "Principal": "*", "Action": "ecr:*", "Resource": resources}
    while True:
        resources.append(EVIL.replace("*b", f"*?{len(resources)}"))
        if len(json.dumps({"Version": "2012-10-17", "Statement": [statement]})) > 10_240:
            resources.pop()
            break
    text = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    policy = parse_policy(text, resource_policy=True)
    matcher = policy.statements[0]._resource_matcher
    assert matcher is not None
    matched, steps = matcher.run(REPO_ARN, None)
    assert not matched and steps <= len(REPO_ARN)
    request = AuthRequest(
        f"arn:aws:iam::{ACCOUNT}:user/u", ACCOUNT, "ecr:BatchGetImage", REPO_ARN, ACCOUNT
    )
    assert statement_effect(policy, request, as_resource_policy=True) is None


def test_string_like_condition_is_one_pass_for_all_values() -> None:
    values = ["*a" * 30 + f"*{i}" for i in range(50)]
    matcher = _AnyOf(
        [_Pattern(v, wildcards=True, variables=False) for v in values],
    )
    matched, steps = matcher.run("a" * 256, None)
    assert not matched and steps <= 256


def test_lifecycle_patterns_are_linear() -> None:
    rule = {
        "rulePriority": 1,
        "selection": {
            "tagStatus": "tagged",
            "tagPatternList": ["*a*a*a*b"],
            "countType": "imageCountMoreThan",
            "countNumber": 1,
        },
        "action": {"type": "expire"},
    }
    selection = parse_lifecycle(json.dumps({"rules": [rule]})).rules[0].selection
    glob = selection._globs[0]
    matched, steps = glob.run("a" * 128)
    assert not matched and steps <= 128


def test_policy_variable_bodies_parse_without_a_regex() -> None:
    """`${...}` bodies used to go through a regular expression that backtracked quadratically
    on long runs of spaces (2.4 s for 5,000 characters, before any size check)."""
    from cargobay.iam.policy import PolicyError, _parse_variable

    var = _parse_variable(" aws:username , 'it''s' ")
    assert var is not None and (var.key, var.default) == ("aws:username", "it's")
    assert _parse_variable("a" + " " * 50_000 + "'") is None
    resource = "arn:aws:ecr:us-east-1:000000000000:repository/${a" + " " * 50_000 + "'}"
    statement = {"Effect": "Allow", "Action": "ecr:*", "Resource": resource}
    with pytest.raises(PolicyError, match="invalid policy variable"):
        parse_policy(json.dumps({"Version": "2012-10-17", "Statement": statement}))
