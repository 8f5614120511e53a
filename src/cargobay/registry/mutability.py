"""Tag mutability, ECR's four modes: whether a push may move an existing tag.

MUTABLE and IMMUTABLE apply to every tag. IMMUTABLE_WITH_EXCLUSION makes every tag immutable
except those matching one of its WILDCARD filters; MUTABLE_WITH_EXCLUSION makes every tag
mutable except those. The rule lives here once: the manifest service asks `is_immutable` for
pushes through every door, and the ECR API and creation templates validate with `parse`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cargobay.errors import InvalidParameter

MUTABLE = "MUTABLE"
IMMUTABLE = "IMMUTABLE"
IMMUTABLE_WITH_EXCLUSION = "IMMUTABLE_WITH_EXCLUSION"
MUTABLE_WITH_EXCLUSION = "MUTABLE_WITH_EXCLUSION"
MODES = (MUTABLE, IMMUTABLE, IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION)
WITH_EXCLUSION = (IMMUTABLE_WITH_EXCLUSION, MUTABLE_WITH_EXCLUSION)
WILDCARD = "WILDCARD"
# botocore's ImageTagMutabilityExclusionFilters (1 to 5) and ...FilterValue pattern.
MAX_FILTERS = 5
_FILTER = re.compile(r"[0-9a-zA-Z._*-]{1,128}")


def tag_matches(pattern: str, tag: str) -> bool:
    """A WILDCARD filter: `*` stands for any run of characters (none included); the rest of
    the filter must match the whole tag, case-sensitively."""
    parts = (re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(".*".join(parts), tag, re.DOTALL) is not None


@dataclass(frozen=True, slots=True)
class TagMutability:
    mode: str = MUTABLE
    exclusions: tuple[str, ...] = ()

    def is_immutable(self, tag: str) -> bool:
        """Whether a push may not move `tag` once it points at an image."""
        if self.mode == IMMUTABLE:
            return True
        if self.mode == IMMUTABLE_WITH_EXCLUSION:
            return not any(tag_matches(f, tag) for f in self.exclusions)
        if self.mode == MUTABLE_WITH_EXCLUSION:
            return any(tag_matches(f, tag) for f in self.exclusions)
        return False

    def filters_shape(self) -> list[dict[str, str]]:
        """The imageTagMutabilityExclusionFilters list of botocore's shapes."""
        return [{"filterType": WILDCARD, "filter": f} for f in self.exclusions]

    def stored_exclusions(self) -> str | None:
        """The filters as the repositories row keeps them (None when there are none)."""
        return json.dumps(list(self.exclusions)) if self.exclusions else None


def load(mode: str | None, stored: str | None) -> TagMutability:
    """A repository row's setting (already validated when it was written)."""
    return TagMutability(mode or MUTABLE, tuple(json.loads(stored)) if stored else ())


def parse(mode: Any, filters: Any) -> TagMutability:
    """imageTagMutability and imageTagMutabilityExclusionFilters as a request gives them,
    checked as ECR checks them: the exclusion modes need 1 to 5 WILDCARD filters, the plain
    modes take none."""
    if mode not in MODES:
        raise InvalidParameter(
            "Invalid parameter at 'imageTagMutability' failed to satisfy constraint: "
            f"'Member must satisfy enum value set: [{', '.join(MODES)}]'"
        )
    if filters is None or filters == []:
        if mode in WITH_EXCLUSION:
            raise InvalidParameter(
                "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy "
                f"constraint: 'imageTagMutability {mode} needs at least one exclusion filter'"
            )
        return TagMutability(mode)
    if mode not in WITH_EXCLUSION:
        raise InvalidParameter(
            "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy "
            "constraint: 'exclusion filters can only be given with imageTagMutability "
            f"{' or '.join(WITH_EXCLUSION)}'"
        )
    if not isinstance(filters, list) or len(filters) > MAX_FILTERS:
        raise InvalidParameter(
            "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy "
            f"constraint: 'Member must have length less than or equal to {MAX_FILTERS}'"
        )
    values: list[str] = []
    for item in filters:
        if not isinstance(item, dict) or item.get("filterType") != WILDCARD:
            raise InvalidParameter(
                "Invalid parameter at 'filterType' failed to satisfy constraint: "
                f"'Member must satisfy enum value set: [{WILDCARD}]'"
            )
        value = item.get("filter")
        if not isinstance(value, str) or not _FILTER.fullmatch(value):
            raise InvalidParameter(
                "Invalid parameter at 'filter' failed to satisfy constraint: "
                "'Member must satisfy regular expression pattern: ^[0-9a-zA-Z._*-]{1,128}$'"
            )
        if value not in values:
            values.append(value)
    return TagMutability(mode, tuple(values))
