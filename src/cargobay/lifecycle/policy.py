"""The ECR lifecycle policy document: parse and validate (pure, no I/O).

Grammar (values are lower-case in the document, unlike the API's enums):

    {"rules": [{"rulePriority": 1, "description": "...",
                "selection": {"tagStatus": "tagged" | "untagged" | "any",
                              "tagPrefixList": [...] | "tagPatternList": [...],
                              "countType": "imageCountMoreThan" | "sinceImagePushed"
                                           | "sinceImagePulled" | "sinceImageTransitioned",
                              "countUnit": "days",  (the since* types only)
                              "countNumber": 1,
                              "storageClass": "standard" | "archive"},  (default standard)
                "action": {"type": "expire" | "transition",
                           "targetStorageClass": "archive"}}]}  (transition only; required)

Invalid documents raise `LifecyclePolicyError`, whose message has ECR's shape:
"Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy
validation failure: <reason>'". Schema problems use the JSON-schema wording ECR returns
("object has missing required properties ([...])", "instance value (x) not found in enum ...");
the cross-rule rules ECR documents (unique priorities, `any` last, one untagged rule, unique
tag prefix sets) say in words what is wrong and which rule.

Archive storage (issue 18): a rule selects images of one storage class (`standard`, the
default, or `archive`). `transition` (to `archive`) applies to standard images only;
`storageClass: archive` goes with `sinceImageTransitioned` (days since archived) and only that
count type, and since ECR keeps archived images at least 90 days, a rule that expires archived
images must wait at least 90 days. The cross-rule rules (`any` last, one untagged rule, unique
tag sets) hold among the rules of one storage class: a policy may archive untagged images and
later expire the archived ones.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cargobay.wildcards import Glob, Token

PREFIX = (
    "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: "
    "'Lifecycle policy validation failure: "
)

MAX_RULES = 50
MAX_WILDCARDS = 4
# ECR's document model holds rulePriority and countNumber as 32-bit integers; larger values
# used to be stored and then fail every lifecycle run (countNumber * 86400 s overflows dates).
MAX_INT = 2**31 - 1
DAY = 86400.0

TAG_STATUSES = ("any", "tagged", "untagged")
COUNT_TYPES = (
    "imageCountMoreThan",
    "sinceImagePulled",
    "sinceImagePushed",
    "sinceImageTransitioned",
)
AGE_COUNT_TYPES = ("sinceImagePulled", "sinceImagePushed", "sinceImageTransitioned")
COUNT_UNITS = ("days",)
STANDARD, ARCHIVE = "standard", "archive"
STORAGE_CLASSES = (ARCHIVE, STANDARD)
EXPIRE, TRANSITION = "expire", "transition"
ACTION_TYPES = (EXPIRE, TRANSITION)
TARGET_STORAGE_CLASSES = (ARCHIVE,)
# Archived images stay archived at least this long before a lifecycle rule may expire them.
MIN_ARCHIVE_DAYS = 90

_RULE_REQUIRED = ("action", "rulePriority", "selection")
_RULE_ALLOWED = {*_RULE_REQUIRED, "description"}
_SELECTION_REQUIRED = ("countNumber", "countType", "tagStatus")
_SELECTION_ALLOWED = {
    *_SELECTION_REQUIRED,
    "countUnit",
    "storageClass",
    "tagPatternList",
    "tagPrefixList",
}
_ACTION_REQUIRED = ("type",)
_ACTION_ALLOWED = {"type", "targetStorageClass"}


class LifecyclePolicyError(ValueError):
    """An invalid lifecycle policy document. `reason` is the problem alone; `str()` (and
    `message`) is the whole ECR-style InvalidParameterException message."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.message = f"{PREFIX}{reason}'"
        super().__init__(self.message)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _list(values: Any) -> str:
    return json.dumps(sorted(values))


def _expect_type(value: Any, kind: str) -> None:
    if _json_type(value) != kind:
        raise LifecyclePolicyError(
            f"instance type ({_json_type(value)}) does not match any allowed primitive type "
            f'(allowed: ["{kind}"])'
        )


def _object(value: Any, required: tuple[str, ...], allowed: set[str]) -> dict[str, Any]:
    _expect_type(value, "object")
    missing = [key for key in required if key not in value]
    if missing:
        raise LifecyclePolicyError(f"object has missing required properties ({_list(missing)})")
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise LifecyclePolicyError(
            "object instance has properties which are not allowed by the schema: "
            f"({_list(unknown)})"
        )
    return value


def _enum(value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        shown = value if isinstance(value, str) else json.dumps(value)
        raise LifecyclePolicyError(
            f"instance value ({shown}) not found in enum :(possible values: {_list(allowed)})"
        )
    return value


def _positive_int(value: Any) -> int:
    _expect_type(value, "integer")
    if value < 1:
        raise LifecyclePolicyError(
            f"numeric instance is lower than the required minimum (minimum: 1, found: {value})"
        )
    if value > MAX_INT:
        raise LifecyclePolicyError(
            "numeric instance is greater than the required maximum "
            f"(maximum: {MAX_INT}, found: {value})"
        )
    return value


def _string_list(value: Any) -> tuple[str, ...]:
    _expect_type(value, "array")
    if not value:
        raise LifecyclePolicyError(
            "array is too short: must have at least 1 elements but instance has 0 elements"
        )
    for item in value:
        _expect_type(item, "string")
        if not item:
            raise LifecyclePolicyError('string "" is too short (length: 0, required minimum: 1)')
    return tuple(value)


def pattern_glob(pattern: str) -> Glob:
    """A `tagPatternList` entry as a linear-time matcher of whole tags: `*` matches any run of
    characters (including none); everything else, `?` included, matches itself."""
    return Glob([Token("star") if ch == "*" else Token("lit", ch) for ch in pattern])


@dataclass(frozen=True)
class Selection:
    tag_status: str  # "tagged", "untagged" or "any"
    count_type: str  # "imageCountMoreThan", "sinceImagePushed" or "sinceImagePulled"
    count_number: int
    count_unit: str | None = None
    tag_prefixes: tuple[str, ...] = ()
    tag_patterns: tuple[str, ...] = ()
    storage_class: str = STANDARD  # "standard" or "archive": the images the rule sees
    _globs: tuple[Glob, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.tag_patterns and not self._globs:
            object.__setattr__(self, "_globs", tuple(map(pattern_glob, self.tag_patterns)))

    def matches(self, tags: Sequence[str]) -> bool:
        """Whether an image with these tags meets the rule's tag criteria: `tagged` with a
        prefix (pattern) list wants every listed prefix (pattern) matched by some tag."""
        if self.tag_status == "any":
            return True
        if self.tag_status == "untagged":
            return not tags
        if not tags:
            return False
        if self.tag_prefixes:
            return all(any(tag.startswith(p) for tag in tags) for p in self.tag_prefixes)
        return all(any(g.matches(tag) for tag in tags) for g in self._globs)


@dataclass(frozen=True)
class Rule:
    priority: int
    selection: Selection
    action: str = EXPIRE  # "expire" or "transition"
    description: str | None = None
    target_storage_class: str | None = None  # "archive" for a transition


@dataclass(frozen=True)
class LifecyclePolicy:
    rules: tuple[Rule, ...]  # in ascending rulePriority


def _parse_selection(value: Any, priority: int) -> Selection:
    sel = _object(value, _SELECTION_REQUIRED, _SELECTION_ALLOWED)
    tag_status = _enum(sel["tagStatus"], TAG_STATUSES)
    count_type = _enum(sel["countType"], COUNT_TYPES)
    count_number = _positive_int(sel["countNumber"])
    storage_class = _enum(sel.get("storageClass", STANDARD), STORAGE_CLASSES)
    if (storage_class == ARCHIVE) != (count_type == "sinceImageTransitioned"):
        raise LifecyclePolicyError(
            "countType 'sinceImageTransitioned' goes with storageClass 'archive', and "
            f"storageClass 'archive' with countType 'sinceImageTransitioned' only, not "
            f"'{count_type}' with '{storage_class}' (rulePriority {priority})"
        )
    count_unit = None
    if "countUnit" in sel:
        count_unit = _enum(sel["countUnit"], COUNT_UNITS)
        if count_type not in AGE_COUNT_TYPES:
            raise LifecyclePolicyError(
                f"countUnit is not allowed when countType is '{count_type}' "
                f"(rulePriority {priority})"
            )
    elif count_type in AGE_COUNT_TYPES:
        raise LifecyclePolicyError(
            f"countUnit is required when countType is '{count_type}' (rulePriority {priority})"
        )
    prefixes = _string_list(sel["tagPrefixList"]) if "tagPrefixList" in sel else ()
    patterns = _string_list(sel["tagPatternList"]) if "tagPatternList" in sel else ()
    if tag_status == "tagged":
        if not prefixes and not patterns:
            raise LifecyclePolicyError(
                "tagPrefixList or tagPatternList is required when tagStatus is 'tagged' "
                f"(rulePriority {priority})"
            )
        if prefixes and patterns:
            raise LifecyclePolicyError(
                "tagPrefixList and tagPatternList cannot both be given in one rule "
                f"(rulePriority {priority})"
            )
    elif prefixes or patterns:
        raise LifecyclePolicyError(
            "tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged', "
            f"not '{tag_status}' (rulePriority {priority})"
        )
    for pattern in patterns:
        if pattern.count("*") > MAX_WILDCARDS:
            raise LifecyclePolicyError(
                f"tagPatternList value '{pattern}' has more than {MAX_WILDCARDS} wildcards (*) "
                f"(rulePriority {priority})"
            )
    return Selection(
        tag_status, count_type, count_number, count_unit, prefixes, patterns, storage_class
    )


def _parse_rule(value: Any) -> Rule:
    rule = _object(value, _RULE_REQUIRED, _RULE_ALLOWED)
    priority = _positive_int(rule["rulePriority"])
    description = rule.get("description")
    if description is not None:
        _expect_type(description, "string")
    action = rule["action"]
    _expect_type(action, "object")
    if "type" in action:
        # The value first: `transition` (with its targetStorageClass) is best reported as such.
        _enum(action["type"], ACTION_TYPES)
    action = _object(action, _ACTION_REQUIRED, _ACTION_ALLOWED)
    target = action.get("targetStorageClass")
    if action["type"] == TRANSITION:
        if target is None:
            raise LifecyclePolicyError(
                f"targetStorageClass is required when the action type is 'transition' "
                f"(rulePriority {priority})"
            )
        _enum(target, TARGET_STORAGE_CLASSES)
    elif target is not None:
        raise LifecyclePolicyError(
            "targetStorageClass is only allowed when the action type is 'transition' "
            f"(rulePriority {priority})"
        )
    selection = _parse_selection(rule["selection"], priority)
    if action["type"] == TRANSITION and selection.storage_class == ARCHIVE:
        raise LifecyclePolicyError(
            "images in storageClass 'archive' cannot be transitioned to 'archive' "
            f"(rulePriority {priority})"
        )
    if selection.storage_class == ARCHIVE and selection.count_number < MIN_ARCHIVE_DAYS:
        raise LifecyclePolicyError(
            f"archived images are kept at least {MIN_ARCHIVE_DAYS} days: countNumber must be "
            f"{MIN_ARCHIVE_DAYS} or more with storageClass 'archive' (rulePriority {priority})"
        )
    return Rule(priority, selection, action["type"], description, target)


def parse_policy(text: str) -> LifecyclePolicy:
    """Parse and validate a lifecycle policy document; LifecyclePolicyError when invalid."""
    try:
        document = json.loads(text)
    except (ValueError, TypeError, RecursionError):
        raise LifecyclePolicyError("Could not map policyString into LifecyclePolicy.") from None
    if not isinstance(document, dict):
        raise LifecyclePolicyError("Could not map policyString into LifecyclePolicy.")
    _object(document, ("rules",), {"rules"})
    raw_rules = document["rules"]
    _expect_type(raw_rules, "array")
    if not raw_rules:
        raise LifecyclePolicyError(
            "array is too short: must have at least 1 elements but instance has 0 elements"
        )
    if len(raw_rules) > MAX_RULES:
        raise LifecyclePolicyError(
            f"array is too long: must have at most {MAX_RULES} elements but instance has "
            f"{len(raw_rules)} elements"
        )
    rules = [_parse_rule(raw) for raw in raw_rules]

    seen: set[int] = set()
    for rule in rules:
        if rule.priority in seen:
            raise LifecyclePolicyError(
                f"rulePriority {rule.priority} is used by more than one rule; "
                "rule priorities must be unique"
            )
        seen.add(rule.priority)
    for storage_class in STORAGE_CLASSES:
        _check_class(
            [r for r in rules if r.selection.storage_class == storage_class], storage_class
        )
    return LifecyclePolicy(tuple(sorted(rules, key=lambda r: r.priority)))


def _check_class(rules: list[Rule], storage_class: str) -> None:
    """ECR's cross-rule rules, among the rules that select one storage class."""
    if not rules:
        return
    where = "" if storage_class == STANDARD else f" among storageClass '{storage_class}' rules"
    highest = max(rule.priority for rule in rules)
    for rule in rules:
        if rule.selection.tag_status == "any" and rule.priority != highest:
            raise LifecyclePolicyError(
                f"the rule with tagStatus 'any' (rulePriority {rule.priority}) must have the "
                f"highest rulePriority{where} ({highest} is higher)"
            )
    untagged = [r.priority for r in rules if r.selection.tag_status == "untagged"]
    if len(untagged) > 1:
        raise LifecyclePolicyError(
            f"only one rule may select untagged images{where}; rulePriority "
            f"{', '.join(map(str, sorted(untagged)))} all have tagStatus 'untagged'"
        )
    tag_sets: dict[tuple[str, frozenset[str]], int] = {}
    for rule in sorted(rules, key=lambda r: r.priority):
        sel = rule.selection
        for kind, values in (
            ("tagPrefixList", sel.tag_prefixes),
            ("tagPatternList", sel.tag_patterns),
        ):
            if not values:
                continue
            key = (kind, frozenset(values))
            if key in tag_sets:
                raise LifecyclePolicyError(
                    f"rules {tag_sets[key]} and {rule.priority} have the same {kind} "
                    f"{json.dumps(sorted(values))}; each rule's set of tag prefixes must be "
                    "unique"
                )
            tag_sets[key] = rule.priority
