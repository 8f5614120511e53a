"""Which images a lifecycle policy expires or archives (pure, no I/O).

ECR's evaluation rules (Amazon ECR User Guide, "Lifecycle policy evaluation rules"):

- All rules are evaluated, then applied in ascending `rulePriority`.
- An image is expired by exactly one or zero rules.
- An image that matches the tag criteria of a higher-priority rule cannot be expired by a
  lower-priority rule; lower rules still see (count) it as if it had not been expired.
- Expiry is ordered by push time, oldest first.
- `imageCountMoreThan`: the rule's selection sorted newest to oldest by push time; every image
  past the first `countNumber` is expired.
- `sinceImagePushed`: every selected image pushed more than `countNumber` days ago.
- `sinceImagePulled`: every selected image whose last recorded pull (its push, when it was never
  pulled) is more than `countNumber` days ago.

- Storage classes (archive, issue 18): a rule sees only the images of its `storageClass`
  (ARCHIVED images for `archive`, the others for `standard`), so it neither counts nor acts on
  the other class. `sinceImageTransitioned`: every selected image archived more than
  `countNumber` days ago. A `transition` rule's images are archived instead of expired.
  A restored image behaves like a newly pushed one (ECR's archive guide): for the age rules its
  restore counts as its push, so a policy does not archive it again the moment it is back.

So in the documented example with A ["beta-1","prod-1"] (oldest), B ["beta-2","prod-2"] and
C ["beta-3"], rule 1 `prod` keep 1 and rule 2 `beta` keep 1: rule 1 sees A and B and expires A;
rule 2 sees A, B and C, keeps C, and would expire A and B, but both match rule 1's tags; only A
is expired.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from cargobay.lifecycle.policy import ARCHIVE, DAY, LifecyclePolicy, Rule, Selection


class Image(Protocol):
    """What evaluation reads of an image (`registry.images.ImageRow` has these)."""

    @property
    def digest(self) -> str: ...

    @property
    def tags(self) -> Sequence[str]: ...

    @property
    def pushed_at(self) -> float: ...

    @property
    def last_pulled_at(self) -> float | None: ...

    @property
    def status(self) -> str: ...  # ACTIVE, ARCHIVED (or ACTIVATING)

    @property
    def archived_at(self) -> float | None: ...

    @property
    def activated_at(self) -> float | None: ...


I = TypeVar("I", bound=Image)  # noqa: E741


def _newest_first(images: Iterable[I]) -> list[I]:
    return sorted(images, key=lambda i: (i.pushed_at, i.digest), reverse=True)


def _pushed(image: Image) -> float:
    """When the image was pushed, or restored from the archive if that is later."""
    return max(image.pushed_at, image.activated_at or 0.0)


def candidates(selection: Selection, selected: list[I], now: float) -> list[I]:
    """The images of a rule's selection that its count criterion marks, before priorities."""
    if selection.count_type == "imageCountMoreThan":
        return _newest_first(selected)[selection.count_number :]
    limit = selection.count_number * DAY
    if selection.count_type == "sinceImagePushed":
        return [i for i in selected if now - _pushed(i) > limit]
    if selection.count_type == "sinceImageTransitioned":
        return [i for i in selected if i.archived_at is not None and now - i.archived_at > limit]
    if selection.count_type == "sinceImagePulled":
        return [i for i in selected if now - max(i.last_pulled_at or 0.0, _pushed(i)) > limit]
    raise ValueError(f"unknown countType {selection.count_type!r}")


def in_class(selection: Selection, image: Image) -> bool:
    """Whether the image is in the storage class the rule selects."""
    return (image.status == "ARCHIVED") == (selection.storage_class == ARCHIVE)


def first_rule(policy: LifecyclePolicy, image: Image) -> Rule | None:
    """The rule that decides the image's fate: the first by priority whose storage class and
    tag criteria it matches (the rules after it may count it, never act on it)."""
    for rule in policy.rules:
        if in_class(rule.selection, image) and rule.selection.matches(image.tags):
            return rule
    return None


def evaluate(policy: LifecyclePolicy, images: Iterable[I], now: float) -> list[tuple[I, Rule]]:
    """The images the policy acts on and the rule that acts on each, oldest push first (the
    rule's `action` says whether it expires or archives the image)."""
    pool = list(images)
    protected: set[str] = set()  # digests some higher-priority rule's tag criteria matched
    expired: dict[str, tuple[I, Rule]] = {}
    for rule in sorted(policy.rules, key=lambda r: r.priority):
        selected = [
            image
            for image in pool
            if in_class(rule.selection, image) and rule.selection.matches(image.tags)
        ]
        for image in candidates(rule.selection, selected, now):
            if image.digest not in protected:
                expired[image.digest] = (image, rule)
        protected.update(image.digest for image in selected)
    return sorted(expired.values(), key=lambda pair: (pair[0].pushed_at, pair[0].digest))
