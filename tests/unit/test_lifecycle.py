"""Unit tests for ECR lifecycle policies (cargobay.lifecycle): the grammar and its validation
messages, and evaluation against synthetic images with controlled push times and tags, each
compared with a hand-computed expectation (the multi-rule examples are the ones in the Amazon
ECR User Guide, "Examples of lifecycle policies")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from cargobay.lifecycle.evaluate import evaluate
from cargobay.lifecycle.policy import (
    PREFIX,
    LifecyclePolicyError,
    parse_policy,
    pattern_glob,
)

NOW = 1_700_000_000.0
DAY = 86400.0


@dataclass(frozen=True)
class Img:
    digest: str
    tags: list[str] = field(default_factory=list)
    pushed_at: float = NOW
    last_pulled_at: float | None = None
    status: str = "ACTIVE"
    archived_at: float | None = None
    activated_at: float | None = None


def img(name: str, days_ago: float, *tags: str, pulled_days_ago: float | None = None) -> Img:
    pulled = None if pulled_days_ago is None else NOW - pulled_days_ago * DAY
    return Img(f"sha256:{name}", list(tags), NOW - days_ago * DAY, pulled)


def rule(
    priority: int,
    tag_status: str = "any",
    count_type: str = "imageCountMoreThan",
    count_number: int = 1,
    *,
    prefixes: list[str] | None = None,
    patterns: list[str] | None = None,
    unit: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    selection: dict[str, Any] = {
        "tagStatus": tag_status,
        "countType": count_type,
        "countNumber": count_number,
    }
    if prefixes is not None:
        selection["tagPrefixList"] = prefixes
    if patterns is not None:
        selection["tagPatternList"] = patterns
    if unit is None and count_type.startswith("since"):
        unit = "days"
    if unit is not None:
        selection["countUnit"] = unit
    return {
        "rulePriority": priority,
        "description": f"rule {priority}",
        "selection": selection,
        "action": {"type": "expire"},
        **extra,
    }


def policy(*rules: dict[str, Any]) -> str:
    return json.dumps({"rules": list(rules)})


def expired(text: str, images: list[Img], now: float = NOW) -> dict[str, int]:
    """{image name: priority of the rule that expires it}."""
    return {
        image.digest.removeprefix("sha256:"): r.priority
        for image, r in evaluate(parse_policy(text), images, now)
    }


# -- the examples in the ECR user guide ---------------------------------------------------------


def test_docs_filtering_on_image_age() -> None:
    """Untagged images older than 14 days expire; tagged ones are not selected."""
    text = policy(rule(1, "untagged", "sinceImagePushed", 14))
    images = [
        img("old", 20),
        img("older14", 15),
        img("young", 13),
        img("tagged-old", 30, "v1"),
    ]
    assert expired(text, images) == {"old": 1, "older14": 1}


def test_docs_filtering_on_image_age_with_pattern() -> None:
    """The current docs' version: tags matching prod* older than 14 days."""
    text = policy(rule(1, "tagged", "sinceImagePushed", 14, patterns=["prod*"]))
    images = [
        img("a", 20, "prod"),
        img("b", 20, "prod1"),
        img("c", 20, "dev", "prod-2"),
        img("d", 20, "dev"),
        img("e", 3, "prod3"),
        img("f", 20),
    ]
    assert expired(text, images) == {"a": 1, "b": 1, "c": 1}


def test_docs_filtering_on_image_count() -> None:
    """Keep only one untagged image: the newest."""
    text = policy(rule(1, "untagged", "imageCountMoreThan", 1))
    images = [img("u1", 5), img("u2", 4), img("u3", 3), img("t", 1, "latest")]
    assert expired(text, images) == {"u1": 1, "u2": 1}


EXAMPLE_REPO = [
    img("A", 10, "beta-1", "prod-1"),
    img("B", 9, "beta-2", "prod-2"),
    img("C", 8, "beta-3"),
]


def test_docs_multiple_rules_example_a() -> None:
    """Rule 1 (prod, keep 1) expires A. Rule 2 (beta, keep 1) counts A, B and C and would
    expire A and B, but B matches rule 1's tags and so can't be expired by rule 2."""
    text = policy(
        rule(1, "tagged", prefixes=["prod"]),
        rule(2, "tagged", prefixes=["beta"]),
    )
    assert expired(text, EXAMPLE_REPO) == {"A": 1}


def test_docs_multiple_rules_example_b() -> None:
    """The same images with the rules swapped: rule 1 (beta, keep 1) expires A and B; rule 2
    (prod) sees only images rule 1 already saw."""
    text = policy(
        rule(1, "tagged", prefixes=["beta"]),
        rule(2, "tagged", prefixes=["prod"]),
    )
    assert expired(text, EXAMPLE_REPO) == {"A": 1, "B": 1}


def test_docs_multiple_tags_in_one_rule_example_a() -> None:
    """Every prefix must be matched: only C and F carry both alpha and beta; C is old."""
    text = policy(rule(1, "tagged", "sinceImagePushed", 5, prefixes=["alpha", "beta"]))
    images = [
        img("A", 12, "alpha-1"),
        img("B", 11, "beta-1"),
        img("C", 10, "alpha-2", "beta-2"),
        img("D", 4, "alpha-3"),
        img("E", 3, "beta-3"),
        img("F", 2, "alpha-4", "beta-4"),
    ]
    assert expired(text, images) == {"C": 1}


def test_docs_multiple_tags_in_one_rule_example_b() -> None:
    """Tags are not exclusive: extra tags do not stop a match."""
    text = policy(rule(1, "tagged", prefixes=["alpha", "beta"]))
    images = [
        img("A", 10, "alpha-1", "beta-1", "gamma-1"),
        img("B", 9, "alpha-2", "beta-2"),
        img("C", 8, "alpha-3", "beta-3", "gamma-2"),
    ]
    assert expired(text, images) == {"A": 1, "B": 1}


# -- rule forms -----------------------------------------------------------------------------------


def test_image_count_keeps_the_newest_n() -> None:
    text = policy(rule(1, "any", "imageCountMoreThan", 3))
    images = [img(f"i{n}", n) for n in range(1, 7)]  # i1 newest ... i6 oldest
    assert expired(text, images) == {"i4": 1, "i5": 1, "i6": 1}
    # No more images than the count: nothing expires.
    assert expired(text, images[:3]) == {}


def test_image_count_ties_are_broken_by_digest() -> None:
    text = policy(rule(1, "any", "imageCountMoreThan", 1))
    images = [img("a", 1), img("b", 1), img("c", 1)]
    # Same push time: the greatest digest counts as the newest, deterministically.
    assert expired(text, images) == {"a": 1, "b": 1}
    assert expired(text, list(reversed(images))) == {"a": 1, "b": 1}


def test_since_image_pushed_is_strictly_older_than_n_days() -> None:
    text = policy(rule(1, "any", "sinceImagePushed", 7))
    images = [img("exactly", 7), img("over", 7.0001), img("under", 6.9)]
    assert expired(text, images) == {"over": 1}


def test_since_image_pulled_uses_last_pull_else_push() -> None:
    text = policy(rule(1, "any", "sinceImagePulled", 30))
    images = [
        img("pulled-recently", 100, pulled_days_ago=2),
        img("pulled-long-ago", 100, pulled_days_ago=31),
        img("never-pulled-old", 40),
        img("never-pulled-new", 10),
    ]
    assert expired(text, images) == {"pulled-long-ago": 1, "never-pulled-old": 1}


def test_tag_prefix_list_matches_prefixes() -> None:
    text = policy(rule(1, "tagged", "sinceImagePushed", 1, prefixes=["prod"]))
    images = [
        img("production", 5, "production"),
        img("prod", 5, "prod"),
        img("preprod", 5, "preprod"),
        img("untagged", 5),
    ]
    assert expired(text, images) == {"production": 1, "prod": 1}


def test_tag_pattern_list_wildcards() -> None:
    text = policy(rule(1, "tagged", "sinceImagePushed", 1, patterns=["*-rc*"]))
    images = [
        img("rc", 5, "v1-rc1"),
        img("rc-end", 5, "v2-rc"),
        img("no-dash", 5, "v3rc1"),
        img("final", 5, "v1"),
    ]
    assert expired(text, images) == {"rc": 1, "rc-end": 1}


def test_tag_pattern_without_wildcard_is_exact() -> None:
    text = policy(rule(1, "tagged", "sinceImagePushed", 1, patterns=["v1.0"]))
    images = [img("exact", 5, "v1.0"), img("longer", 5, "v1.0.1"), img("dot", 5, "v1x0")]
    # `.` is literal, and the pattern must match the whole tag.
    assert expired(text, images) == {"exact": 1}


def test_tag_pattern_list_needs_every_pattern() -> None:
    text = policy(rule(1, "tagged", "sinceImagePushed", 1, patterns=["prod*", "*-stable"]))
    images = [
        img("both", 5, "prod-7", "v7-stable"),
        img("one-tag-both", 5, "prod-stable"),
        img("prod-only", 5, "prod-8"),
        img("stable-only", 5, "v8-stable"),
    ]
    assert expired(text, images) == {"both": 1, "one-tag-both": 1}


def test_pattern_glob() -> None:
    assert pattern_glob("*test*1*2*3").matches("my-test-x1y2z3")
    assert not pattern_glob("a*b").matches("ab-c")
    assert pattern_glob("a*b").matches("ab")
    assert pattern_glob("(x)+").matches("(x)+")
    assert pattern_glob("v?").matches("v?") and not pattern_glob("v?").matches("v1")


def test_untagged_and_tagged_selection() -> None:
    text = policy(
        rule(1, "untagged", "imageCountMoreThan", 1),
        rule(2, "tagged", "imageCountMoreThan", 1, prefixes=["v"]),
    )
    images = [
        img("u-old", 9),
        img("u-new", 1),
        img("v1", 8, "v1"),
        img("v2", 2, "v2"),
        img("other", 20, "other"),
    ]
    assert expired(text, images) == {"u-old": 1, "v1": 2}


# -- priorities and the at-most-one-rule interactions ---------------------------------------------


def test_any_rule_counts_images_higher_rules_selected_but_cannot_expire_them() -> None:
    """Rule 1 (release*, keep 1) expires r1 and protects r2. Rule 2 (any, keep 2) counts all
    five images newest first (d3, d2 | d1, r2, r1): it keeps d3 and d2 and may expire only d1,
    because r2 and r1 matched rule 1's tags."""
    text = policy(
        rule(1, "tagged", "imageCountMoreThan", 1, prefixes=["release"]),
        rule(2, "any", "imageCountMoreThan", 2),
    )
    images = [
        img("r1", 10, "release-1"),
        img("r2", 9, "release-2"),
        img("d1", 8, "dev-1"),
        img("d2", 7, "dev-2"),
        img("d3", 6, "dev-3"),
    ]
    assert expired(text, images) == {"r1": 1, "d1": 2}


def test_untagged_then_any_by_age() -> None:
    """The common policy: untagged after 7 days, then keep the newest 3 of anything. The any
    rule counts the untagged images too, but they belong to rule 1."""
    text = policy(
        rule(1, "untagged", "sinceImagePushed", 7),
        rule(2, "any", "imageCountMoreThan", 3),
    )
    images = [
        img("u-old", 30),
        img("u-new", 1),
        img("t1", 20, "t1"),
        img("t2", 15, "t2"),
        img("t3", 10, "t3"),
        img("t4", 5, "t4"),
    ]
    # Rule 2, newest first: u-new, t4, t3 | t2, t1, u-old -> t2 and t1 (u-old is rule 1's).
    assert expired(text, images) == {"u-old": 1, "t1": 2, "t2": 2}


def test_each_image_expired_by_at_most_one_rule_the_first() -> None:
    text = policy(
        rule(1, "tagged", "sinceImagePushed", 5, prefixes=["a"]),
        rule(2, "tagged", "sinceImagePushed", 1, prefixes=["b"]),
    )
    images = [img("ab", 10, "a1", "b1"), img("b", 10, "b2"), img("a-young", 2, "a2", "b3")]
    # ab: rule 1. b: rule 2. a-young: rule 1 keeps it, and it matched rule 1's tags, so rule 2
    # (which alone would expire it) cannot.
    result = evaluate(parse_policy(text), images, NOW)
    assert [(i.digest, r.priority) for i, r in result] == [("sha256:ab", 1), ("sha256:b", 2)]


def test_rules_apply_in_priority_order_not_document_order() -> None:
    text = policy(
        rule(2, "tagged", prefixes=["beta"]),
        rule(1, "tagged", prefixes=["prod"]),
    )
    assert expired(text, EXAMPLE_REPO) == {"A": 1}


def test_results_are_oldest_first() -> None:
    text = policy(rule(1, "any", "imageCountMoreThan", 1))
    images = [img("b", 3), img("d", 1), img("a", 4), img("c", 2)]
    assert [i.digest for i, _ in evaluate(parse_policy(text), images, NOW)] == [
        "sha256:a",
        "sha256:b",
        "sha256:c",
    ]


# -- validation ----------------------------------------------------------------------------------


def invalid(text: str) -> str:
    with pytest.raises(LifecyclePolicyError) as info:
        parse_policy(text)
    message = str(info.value)
    assert message.startswith(PREFIX) and message.endswith("'"), message
    assert info.value.message == message
    return info.value.reason


def test_valid_policy_parses() -> None:
    parsed = parse_policy(
        policy(
            rule(3, "any", "imageCountMoreThan", 100),
            rule(1, "untagged", "sinceImagePushed", 14),
            rule(2, "tagged", patterns=["*test*1*2*3", "test*1*2*3*"]),
        )
    )
    assert [r.priority for r in parsed.rules] == [1, 2, 3]
    assert parsed.rules[0].selection.count_unit == "days"
    assert parsed.rules[0].description == "rule 1"
    assert parsed.rules[1].selection.tag_patterns == ("*test*1*2*3", "test*1*2*3*")
    # storageClass standard is the default and may be given.
    storage = rule(1, "untagged", "sinceImagePushed", 1)
    storage["selection"]["storageClass"] = "standard"
    parse_policy(policy(storage))


def test_full_message_shape() -> None:
    with pytest.raises(LifecyclePolicyError) as info:
        parse_policy("{}")
    assert str(info.value) == (
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
        "'Lifecycle policy validation failure: object has missing required properties "
        '(["rules"])\''
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{not json", "Could not map policyString into LifecyclePolicy."),
        ("[]", "Could not map policyString into LifecyclePolicy."),
        ('{"rules": {}}', "instance type (object) does not match any allowed primitive type"),
        ('{"rules": []}', "array is too short"),
        (
            json.dumps({"rules": [rule(1)], "version": 1}),
            'properties which are not allowed by the schema: (["version"])',
        ),
        (policy({**rule(1), "extra": True}), 'not allowed by the schema: (["extra"])'),
        (
            policy({"rulePriority": 1, "selection": rule(1)["selection"]}),
            'object has missing required properties (["action"])',
        ),
        (policy(rule(0)), "lower than the required minimum (minimum: 1, found: 0)"),
        (policy(rule(1, count_number=0)), "(minimum: 1, found: 0)"),
        (policy(rule(1, count_number=-3)), "(minimum: 1, found: -3)"),
        (policy({**rule(1), "rulePriority": "1"}), "(string) does not match any allowed"),
        (policy(rule(1, count_number=1.5)), "(number) does not match any allowed"),
        (policy({**rule(1), "description": 7}), "(integer) does not match any allowed"),
        (policy(rule(1, "TAGGED", prefixes=["a"])), "instance value (TAGGED) not found in enum"),
        (policy(rule(1, count_type="imageCountLessThan")), "(imageCountLessThan) not found"),
        (
            policy(rule(1, count_type="sinceImageTransitioned")),
            "countType 'sinceImageTransitioned' goes with storageClass 'archive'",
        ),
        (policy(rule(1, "untagged", "sinceImagePushed", unit="hours")), "(hours) not found"),
        (
            policy(rule(1, unit="days")),
            "countUnit is not allowed when countType is 'imageCountMoreThan'",
        ),
        (
            policy(
                {
                    **rule(1),
                    "selection": {
                        "tagStatus": "any",
                        "countType": "sinceImagePushed",
                        "countNumber": 3,
                    },
                }
            ),
            "countUnit is required when countType is 'sinceImagePushed'",
        ),
        (
            policy(rule(1, "tagged")),
            "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'",
        ),
        (
            policy(rule(1, "untagged", prefixes=["a"])),
            "only allowed when tagStatus is 'tagged', not 'untagged'",
        ),
        (
            policy(rule(1, "any", patterns=["a*"])),
            "only allowed when tagStatus is 'tagged', not 'any'",
        ),
        (
            policy(rule(1, "tagged", prefixes=["a"], patterns=["b*"])),
            "cannot both be given in one rule",
        ),
        (policy(rule(1, "tagged", prefixes=[])), "array is too short"),
        (policy(rule(1, "tagged", prefixes=[""])), 'string "" is too short'),
        (policy(rule(1, "tagged", prefixes=[7])), "(integer) does not match"),
        (
            policy(rule(1, "tagged", patterns=["test*1*2*3*4*5*6"])),
            "tagPatternList value 'test*1*2*3*4*5*6' has more than 4 wildcards",
        ),
        (policy(rule(1, "tagged", patterns=["*a*b*c*d*"])), "has more than 4 wildcards"),
        (
            policy(rule(1, "untagged"), rule(1, "tagged", prefixes=["a"])),
            "rulePriority 1 is used by more than one rule",
        ),
        (
            policy(rule(1, "any"), rule(2, "untagged")),
            "the rule with tagStatus 'any' (rulePriority 1) must have the highest rulePriority",
        ),
        (
            policy(rule(1, "untagged"), rule(2, "untagged", count_number=5)),
            "only one rule may select untagged images",
        ),
        (
            policy(rule(1, "tagged", prefixes=["a", "b"]), rule(2, "tagged", prefixes=["b", "a"])),
            "rules 1 and 2 have the same tagPrefixList",
        ),
        (
            policy({**rule(1), "action": {"type": "move"}}),
            'instance value (move) not found in enum :(possible values: ["expire", "transition"])',
        ),
        (policy({**rule(1), "action": {}}), 'missing required properties (["type"])'),
        (policy({**rule(1), "action": {"type": "expire", "x": 1}}), '(["x"])'),
        (
            policy(
                {
                    **rule(1),
                    "selection": {**rule(1)["selection"], "storageClass": "cold"},
                }
            ),
            "instance value (cold) not found in enum",
        ),
        (
            policy({**rule(1), "selection": {**rule(1)["selection"], "tagList": ["a"]}}),
            'not allowed by the schema: (["tagList"])',
        ),
    ],
)
def test_invalid_policies_name_the_problem(text: str, reason: str) -> None:
    assert reason in invalid(text)


def test_rule_count_limit() -> None:
    fifty = [rule(n, "tagged", prefixes=[f"p{n}-"]) for n in range(1, 51)]
    assert len(parse_policy(policy(*fifty)).rules) == 50
    fifty_one = [*fifty, rule(51, "tagged", prefixes=["p51-"])]
    assert "must have at most 50 elements but instance has 51" in invalid(policy(*fifty_one))


def test_four_wildcards_are_allowed() -> None:
    parse_policy(policy(rule(1, "tagged", patterns=["*a*b*c*"])))
    parse_policy(policy(rule(1, "tagged", patterns=["*"])))


def test_any_rule_alone_or_last_is_valid() -> None:
    parse_policy(policy(rule(1, "any")))
    parse_policy(policy(rule(5, "untagged"), rule(9, "any"), rule(7, "tagged", prefixes=["x"])))
