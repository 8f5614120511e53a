"""Lifecycle rules of the archive storage class (issue 18): the grammar ECR documents
(`transition` to `archive`, `storageClass`, `sinceImageTransitioned`) and how evaluation keeps
the two storage classes apart."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cargobay.lifecycle.evaluate import evaluate
from cargobay.lifecycle.policy import LifecyclePolicyError, parse_policy
from unit.test_lifecycle import DAY, NOW, Img, policy, rule

TO_ARCHIVE = {"type": "transition", "targetStorageClass": "archive"}


def archive_rule(priority: int, tag_status: str = "any", days: int = 90, **extra: Any) -> dict:
    """A rule over archived images: expire those archived more than `days` ago."""
    found = rule(priority, tag_status, "sinceImageTransitioned", days, **extra)
    found["selection"]["storageClass"] = "archive"
    return found


def archived(name: str, days_ago: float, archived_days_ago: float, *tags: str) -> Img:
    return Img(
        f"sha256:{name}", list(tags), NOW - days_ago * DAY, None, "ARCHIVED",
        NOW - archived_days_ago * DAY,
    )  # fmt: skip


def standard(name: str, days_ago: float, *tags: str) -> Img:
    return Img(f"sha256:{name}", list(tags), NOW - days_ago * DAY)


def acted(text: str, images: list[Img]) -> dict[str, tuple[int, str]]:
    return {
        image.digest.removeprefix("sha256:"): (r.priority, r.action)
        for image, r in evaluate(parse_policy(text), images, NOW)
    }


def invalid(text: str) -> str:
    with pytest.raises(LifecyclePolicyError) as info:
        parse_policy(text)
    return info.value.reason


def test_archive_then_expire_policy_parses() -> None:
    text = policy(
        {**rule(1, "untagged", "sinceImagePushed", 30), "action": TO_ARCHIVE},
        archive_rule(2, "untagged", 365),
        rule(3, "any", "imageCountMoreThan", 10),
    )
    rules = parse_policy(text).rules
    assert [(r.action, r.target_storage_class, r.selection.storage_class) for r in rules] == [
        ("transition", "archive", "standard"),
        ("expire", None, "archive"),
        ("expire", None, "standard"),
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (
            policy({**rule(1), "action": {"type": "transition"}}),
            "targetStorageClass is required when the action type is 'transition'",
        ),
        (
            policy({**rule(1), "action": {"type": "transition", "targetStorageClass": "standard"}}),
            "instance value (standard) not found in enum",
        ),
        (
            policy({**rule(1), "action": {"type": "expire", "targetStorageClass": "archive"}}),
            "targetStorageClass is only allowed when the action type is 'transition'",
        ),
        (
            policy({**archive_rule(1), "action": TO_ARCHIVE}),
            "cannot be transitioned to 'archive'",
        ),
        (policy(archive_rule(1, days=89)), "countNumber must be 90 or more"),
        (
            policy(
                {
                    **rule(1, "any", "imageCountMoreThan", 3),
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": 3,
                        "storageClass": "archive",
                    },
                }
            ),
            "storageClass 'archive' with countType 'sinceImageTransitioned' only",
        ),
        (
            policy(archive_rule(1, "any"), archive_rule(2, "untagged", 100)),
            "must have the highest rulePriority among storageClass 'archive' rules",
        ),
        (
            policy(archive_rule(1, "untagged"), archive_rule(2, "untagged", 100)),
            "only one rule may select untagged images among storageClass 'archive' rules",
        ),
    ],
)
def test_invalid_archive_rules(text: str, reason: str) -> None:
    assert reason in invalid(text)


def test_each_rule_sees_only_its_storage_class() -> None:
    text = policy(
        {**rule(1, "untagged", "sinceImagePushed", 30), "action": TO_ARCHIVE},
        archive_rule(2, "untagged", 90),
        rule(3, "any", "imageCountMoreThan", 1),
    )
    images = [
        standard("old", 40),  # untagged, old: archived by rule 1
        standard("new", 5),  # untagged, new: kept by rule 1, the newest for rule 3
        standard("tagged", 50, "v1"),  # past rule 3's count of one: expired
        archived("cold", 400, 100),  # archived 100 days ago: expired by rule 2
        archived("fresh", 400, 10),  # archived 10 days ago: kept
        archived("kept", 400, 200, "v0"),  # tagged archived images: no archive rule for them
    ]
    assert acted(text, images) == {
        "old": (1, "transition"),
        "tagged": (3, "expire"),
        "cold": (2, "expire"),
    }


def test_standard_rules_never_count_archived_images() -> None:
    # Keep the newest two: archived images do not take places in the count.
    text = policy(rule(1, "any", "imageCountMoreThan", 2))
    images = [archived(f"a{i}", 1, 1) for i in range(5)] + [
        standard("s1", 3),
        standard("s2", 2),
        standard("s3", 1),
    ]
    assert acted(text, images) == {"s1": (1, "expire")}


def test_the_document_keeps_the_action_verbatim() -> None:
    text = policy({**rule(1, "untagged", "sinceImagePulled", 7), "action": TO_ARCHIVE})
    assert json.loads(text)["rules"][0]["action"] == TO_ARCHIVE
    assert parse_policy(text).rules[0].action == "transition"


def test_a_restored_image_counts_as_newly_pushed() -> None:
    """Restored 3 days ago, an image pushed a year ago is not archived again by a 30-day rule
    (ECR: restored images behave like newly pushed ones)."""
    text = policy({**rule(1, "untagged", "sinceImagePushed", 30), "action": TO_ARCHIVE})
    restored = Img(
        "sha256:back", [], NOW - 365 * DAY, None, "ACTIVE", NOW - 40 * DAY, NOW - 3 * DAY
    )
    old = Img("sha256:old", [], NOW - 365 * DAY)
    assert acted(text, [restored, old]) == {"old": (1, "transition")}
    pulled = policy({**rule(1, "untagged", "sinceImagePulled", 30), "action": TO_ARCHIVE})
    assert acted(pulled, [restored, old]) == {"old": (1, "transition")}
