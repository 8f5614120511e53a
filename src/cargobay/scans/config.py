"""Registry scanning configuration and ECR account settings: what is accepted and how a
repository's scan frequency follows from it. Pure functions, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cargobay.errors import ScanningConfigurationInvalid

BASIC, ENHANCED = "BASIC", "ENHANCED"
SCAN_ON_PUSH, CONTINUOUS_SCAN, MANUAL = "SCAN_ON_PUSH", "CONTINUOUS_SCAN", "MANUAL"
WILDCARD = "WILDCARD"
_FILTER = re.compile(r"^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*$")

# GetAccountSetting/PutAccountSetting: name -> (accepted values, default). cargobay has one
# scanning engine and always mounts shared blobs; the values are recorded and reported.
ACCOUNT_SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "BASIC_SCAN_TYPE_VERSION": (("AWS_NATIVE", "CLAIR"), "AWS_NATIVE"),
    "REGISTRY_POLICY_SCOPE": (("V1", "V2"), "V2"),
    "BLOB_MOUNTING": (("ENABLED", "DISABLED"), "ENABLED"),
}


@dataclass(frozen=True, slots=True)
class Rule:
    frequency: str
    filters: tuple[str, ...]

    def shape(self) -> dict[str, Any]:
        return {
            "scanFrequency": self.frequency,
            "repositoryFilters": [{"filter": f, "filterType": WILDCARD} for f in self.filters],
        }


@dataclass(frozen=True, slots=True)
class ScanningConfiguration:
    scan_type: str = BASIC
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def shape(self) -> dict[str, Any]:
        return {"scanType": self.scan_type, "rules": [rule.shape() for rule in self.rules]}

    def frequency(self, repository: str, scan_on_push: bool) -> tuple[str, list[str]]:
        """(scan frequency, the filters that chose it) of a repository, as ECR applies the
        rules: a CONTINUOUS_SCAN filter beats a SCAN_ON_PUSH one; the repository's own
        (deprecated) scanOnPush flag still asks for scans on push; otherwise MANUAL."""
        for wanted in (CONTINUOUS_SCAN, SCAN_ON_PUSH):
            for rule in self.rules:
                if rule.frequency != wanted:
                    continue
                hits = [f for f in rule.filters if matches(f, repository)]
                if hits:
                    return wanted, hits
        return (SCAN_ON_PUSH if scan_on_push else MANUAL), []


def matches(pattern: str, name: str) -> bool:
    """ECR's WILDCARD filter: `*` stands for any characters; without one, the filter matches
    every repository name containing it."""
    if "*" not in pattern:
        return pattern in name
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), name) is not None


def _invalid(message: str) -> ScanningConfigurationInvalid:
    return ScanningConfigurationInvalid(message)


def parse(payload: dict[str, Any]) -> ScanningConfiguration:
    """PutRegistryScanningConfiguration's input, validated as ECR does."""
    scan_type = payload.get("scanType", BASIC)
    if scan_type not in (BASIC, ENHANCED):
        raise _invalid("scanType must be one of BASIC, ENHANCED")
    raw_rules = payload.get("rules", [])
    if not isinstance(raw_rules, list) or len(raw_rules) > 2:
        raise _invalid("rules must be a list of at most 2 rules")
    rules: list[Rule] = []
    for raw in raw_rules:
        if not isinstance(raw, dict):
            raise _invalid("each rule must be an object")
        frequency = raw.get("scanFrequency")
        if frequency not in (SCAN_ON_PUSH, CONTINUOUS_SCAN, MANUAL):
            raise _invalid("scanFrequency must be one of SCAN_ON_PUSH, CONTINUOUS_SCAN, MANUAL")
        if frequency == CONTINUOUS_SCAN and scan_type != ENHANCED:
            raise _invalid("CONTINUOUS_SCAN rules need scanType ENHANCED")
        if any(rule.frequency == frequency for rule in rules):
            raise _invalid(f"only one {frequency} rule is allowed")
        filters = raw.get("repositoryFilters")
        if not isinstance(filters, list) or len(filters) > 100:
            raise _invalid("repositoryFilters must be a list of at most 100 filters")
        values: list[str] = []
        for item in filters:
            value = item.get("filter") if isinstance(item, dict) else None
            if not isinstance(value, str) or not 1 <= len(value) <= 255 or not _FILTER.match(value):
                raise _invalid(f"invalid repository filter {value!r}")
            if item.get("filterType") != WILDCARD:
                raise _invalid("filterType must be WILDCARD")
            values.append(value)
        rules.append(Rule(frequency, tuple(values)))
    return ScanningConfiguration(scan_type, tuple(rules))


def load(scan_type: str, rules: list[dict[str, Any]]) -> ScanningConfiguration:
    """A stored configuration (already validated when it was put)."""
    return ScanningConfiguration(
        scan_type,
        tuple(
            Rule(r["scanFrequency"], tuple(f["filter"] for f in r["repositoryFilters"]))
            for r in rules
        ),
    )


def check_setting(name: Any, value: Any = None, *, putting: bool = False) -> None:
    """Refuse an account setting name (or value, when putting) ECR does not know."""
    if not isinstance(name, str) or name not in ACCOUNT_SETTINGS:
        raise _invalid(
            f"unknown account setting {name!r}; use one of {', '.join(ACCOUNT_SETTINGS)}"
        )
    if putting:
        values = ACCOUNT_SETTINGS[name][0]
        if value not in values:
            raise _invalid(f"{name} must be one of {', '.join(values)}")
