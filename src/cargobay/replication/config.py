"""A registry's replication configuration: ECR's shape, rules and quotas, and which
destinations a repository's pushes go to.

The model (botocore `ecr`) bounds the shape; the limits here are the ones ECR enforces beyond
it: 10 rules, 25 unique destinations in all, 1-100 `PREFIX_MATCH` filters per rule, and a
destination in the source's own region must be another account.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_RULES = 10
MAX_UNIQUE_DESTINATIONS = 25
MAX_FILTERS = 100
_REGION = re.compile(r"[0-9a-z-]{2,25}")
_REGISTRY_ID = re.compile(r"[0-9]{12}")
_FILTER = re.compile(r"(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*")


class ReplicationConfigInvalid(ValueError):
    """A configuration ECR would refuse; the message is the one the caller sees."""


@dataclass(frozen=True, slots=True)
class Destination:
    region: str
    registry_id: str

    def to_json(self) -> dict[str, str]:
        return {"region": self.region, "registryId": self.registry_id}


@dataclass(frozen=True, slots=True)
class Rule:
    destinations: tuple[Destination, ...]
    # PREFIX_MATCH filters; empty means every repository.
    prefixes: tuple[str, ...] = ()

    def matches(self, repository_name: str) -> bool:
        return not self.prefixes or any(repository_name.startswith(p) for p in self.prefixes)

    def to_json(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"destinations": [d.to_json() for d in self.destinations]}
        if self.prefixes:
            rule["repositoryFilters"] = [
                {"filter": p, "filterType": "PREFIX_MATCH"} for p in self.prefixes
            ]
        return rule


@dataclass(frozen=True, slots=True)
class ReplicationConfiguration:
    rules: tuple[Rule, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"rules": [r.to_json() for r in self.rules]}

    def destinations_for(self, repository_name: str) -> list[Destination]:
        """Every destination a push to this repository replicates to, each once, in rule
        order (ECR replicates an image once per destination however many rules match)."""
        seen: dict[Destination, None] = {}
        for rule in self.rules:
            if rule.matches(repository_name):
                for destination in rule.destinations:
                    seen.setdefault(destination, None)
        return list(seen)


def _fail(message: str) -> ReplicationConfigInvalid:
    return ReplicationConfigInvalid(message)


def _destination(value: Any, where: str) -> Destination:
    if not isinstance(value, dict):
        raise _fail(f"{where} must be an object with region and registryId")
    region, registry_id = value.get("region"), value.get("registryId")
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise _fail(f"Invalid parameter at '{where}.region': {region!r} is not a region name")
    if not isinstance(registry_id, str) or not _REGISTRY_ID.fullmatch(registry_id):
        raise _fail(
            f"Invalid parameter at '{where}.registryId' failed to satisfy constraint: "
            "'must satisfy regular expression pattern: [0-9]{12}'"
        )
    return Destination(region, registry_id)


def _prefixes(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_FILTERS:
        raise _fail(f"{where} must list 1 to {MAX_FILTERS} repository filters")
    prefixes: list[str] = []
    for i, item in enumerate(value):
        here = f"{where}.{i + 1}"
        if not isinstance(item, dict):
            raise _fail(f"{here} must be an object with filter and filterType")
        if item.get("filterType") != "PREFIX_MATCH":
            raise _fail(
                f"Invalid parameter at '{here}.filterType' failed to satisfy constraint: "
                "'Member must satisfy enum value set: [PREFIX_MATCH]'"
            )
        text = item.get("filter")
        if not isinstance(text, str) or not 2 <= len(text) <= 256 or not _FILTER.fullmatch(text):
            raise _fail(f"Invalid parameter at '{here}.filter': {text!r} is not a valid prefix")
        prefixes.append(text)
    return tuple(dict.fromkeys(prefixes))


def parse_configuration(
    data: Any, *, source_region: str, source_account: str, known_regions: frozenset[str]
) -> ReplicationConfiguration:
    """Validate a `replicationConfiguration` as PutReplicationConfiguration receives it.

    `known_regions` are the regions this deployment can reach (its own and those configured
    under `[regions.*]`); a destination elsewhere could never complete, so it is refused now
    rather than failing every push later."""
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise _fail("replicationConfiguration must be an object with a list of rules")
    raw_rules = data["rules"]
    if len(raw_rules) > MAX_RULES:
        raise _fail(f"A replication configuration can have at most {MAX_RULES} rules")
    rules: list[Rule] = []
    unique: set[Destination] = set()
    for i, raw in enumerate(raw_rules):
        where = f"replicationConfiguration.rules.{i + 1}"
        if not isinstance(raw, dict) or not isinstance(raw.get("destinations"), list):
            raise _fail(f"{where} must be an object with a list of destinations")
        destinations = tuple(
            _destination(d, f"{where}.destinations.{j + 1}")
            for j, d in enumerate(raw["destinations"])
        )
        for destination in destinations:
            if destination.region == source_region and destination.registry_id == source_account:
                raise _fail("Replication destination cannot be the same as the source registry")
            if destination.region not in known_regions:
                raise _fail(
                    f"Region '{destination.region}' is not configured for replication on this "
                    "registry (add it under [regions] in the server settings)"
                )
        unique.update(destinations)
        rules.append(
            Rule(tuple(dict.fromkeys(destinations)), _prefixes(raw.get("repositoryFilters"), where))
        )
    if len(unique) > MAX_UNIQUE_DESTINATIONS:
        raise _fail(
            f"A replication configuration can have at most {MAX_UNIQUE_DESTINATIONS} unique "
            "destinations"
        )
    return ReplicationConfiguration(tuple(rules))


def from_stored(data: dict[str, Any]) -> ReplicationConfiguration:
    """A configuration read back from the database (validated when it was stored)."""
    rules = []
    for raw in data.get("rules", []):
        destinations = tuple(
            Destination(d["region"], d["registryId"]) for d in raw.get("destinations", [])
        )
        prefixes = tuple(f["filter"] for f in raw.get("repositoryFilters", []) or [])
        rules.append(Rule(destinations, prefixes))
    return ReplicationConfiguration(tuple(rules))
