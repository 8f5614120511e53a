"""DescribeSecret's and ListSecrets' views of secrets: the SecretListEntry / DescribeSecret
shapes, ListSecrets filters (prefix matches, `!` negation, `all` over every attribute) and
pagination with an opaque NextToken."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import select

from cargobay.metadata.schema import secrets_table
from cargobay.secrets import store
from cargobay.secrets.errors import InvalidNextTokenException, InvalidParameterException

FILTER_KEYS = ("description", "name", "tag-key", "tag-value", "primary-region",
               "owning-service", "all")  # fmt: skip
SORT_KEYS = {
    "created-date": "CreatedDate",
    "last-accessed-date": "LastAccessedDate",
    "last-changed-date": "LastChangedDate",
    "name": "Name",
}
DEFAULT_PAGE = 100


async def describe(conn: Any, rows: list[Any], versions_key: str) -> list[dict[str, Any]]:
    """DescribeSecret's answer per row (`versions_key` is VersionIdsToStages there and
    SecretVersionsToStages in a SecretListEntry)."""
    ids = [row.id for row in rows]
    stages = await store.stages_by_version(conn, ids)
    tags = await store.tags_of(conn, ids)
    result = []
    for row in rows:
        entry: dict[str, Any] = {"ARN": row.arn, "Name": row.name}
        if row.description is not None:
            entry["Description"] = row.description
        if row.kms_key_id is not None:
            entry["KmsKeyId"] = row.kms_key_id
        entry["RotationEnabled"] = False
        entry["LastChangedDate"] = row.last_changed_at
        if row.last_accessed_at is not None:
            entry["LastAccessedDate"] = row.last_accessed_at
        if row.deleted_at is not None:
            entry["DeletedDate"] = row.deleted_at
        if tags[row.id]:
            entry["Tags"] = tags[row.id]
        if stages[row.id]:
            entry[versions_key] = stages[row.id]
        entry["CreatedDate"] = row.created_at
        result.append(entry)
    return result


def _filters(filters: Any) -> list[tuple[str, list[str]]]:
    if filters is None:
        return []
    if not isinstance(filters, list) or len(filters) > 10:
        raise InvalidParameterException("Filters must be a list of at most 10 filters.")
    parsed = []
    for item in filters:
        key = item.get("Key") if isinstance(item, dict) else None
        values = item.get("Values") if isinstance(item, dict) else None
        if key not in FILTER_KEYS:
            raise InvalidParameterException(f"Invalid filter key: {key!r}")
        if (
            not isinstance(values, list)
            or not 1 <= len(values) <= 10
            or not all(isinstance(v, str) and len(v) <= 512 for v in values)
        ):
            raise InvalidParameterException("Filter values must list 1 to 10 strings.")
        parsed.append((key, values))
    return parsed


def _attributes(entry: dict[str, Any], key: str, region: str) -> list[str]:
    tags = entry.get("Tags", [])
    if key == "name":
        return [entry["Name"]]
    if key == "description":
        return [entry.get("Description", "")]
    if key == "tag-key":
        return [t["Key"] for t in tags]
    if key == "tag-value":
        return [t["Value"] for t in tags]
    if key == "primary-region":
        return [region]
    if key == "owning-service":
        return []
    return [entry["Name"], entry.get("Description", "")] + [
        part for t in tags for part in (t["Key"], t["Value"])
    ]


def _matches(entry: dict[str, Any], key: str, values: list[str], region: str) -> bool:
    """Values of one filter are alternatives; a `!` value excludes what it would match."""
    attributes = _attributes(entry, key, region)
    if key in ("description", "all"):
        attributes = [a.lower() for a in attributes]

    def hit(value: str) -> bool:
        value = value.lower() if key in ("description", "all") else value
        if key == "all":  # every word of the value, against the words of every attribute
            words = [w for a in attributes for w in a.replace("/", " ").split()] + attributes
            return all(any(w.startswith(part) for w in words) for part in value.split())
        return any(a.startswith(value) for a in attributes)

    positive = [v for v in values if not v.startswith("!")]
    negative = [v[1:] for v in values if v.startswith("!")]
    if any(hit(v) for v in negative):
        return False
    return not positive or any(hit(v) for v in positive)


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: Any) -> int:
    if token is None:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"]
    except (ValueError, KeyError, TypeError):
        raise InvalidNextTokenException("The NextToken value is invalid.") from None
    if not isinstance(offset, int) or offset < 0:
        raise InvalidNextTokenException("The NextToken value is invalid.")
    return offset


async def list_page(
    conn: Any,
    account_id: str,
    region: str,
    now: float,
    *,
    filters: Any,
    max_results: Any,
    next_token: Any,
    include_planned_deletion: Any,
    sort_order: Any,
    sort_by: Any,
) -> dict[str, Any]:
    parsed = _filters(filters)
    if max_results is None:
        max_results = DEFAULT_PAGE
    if (
        isinstance(max_results, bool)
        or not isinstance(max_results, int)
        or not (1 <= max_results <= 100)
    ):
        raise InvalidParameterException("MaxResults must be between 1 and 100.")
    if sort_order not in (None, "asc", "desc"):
        raise InvalidParameterException("SortOrder must be asc or desc.")
    if sort_by is not None and sort_by not in SORT_KEYS:
        raise InvalidParameterException("SortBy must be one of " + ", ".join(SORT_KEYS))
    offset = _offset(next_token)
    t = secrets_table
    rows = (
        await conn.execute(
            select(t).where(t.c.account_id == account_id, t.c.region == region).order_by(t.c.id)
        )
    ).all()
    rows = [
        r
        for r in rows
        if not store.is_expired(r, now) and (include_planned_deletion or r.deletion_date is None)
    ]
    entries = await describe(conn, rows, "SecretVersionsToStages")
    entries = [e for e in entries if all(_matches(e, k, v, region) for k, v in parsed)]
    field = SORT_KEYS[sort_by or "created-date"]
    entries.sort(key=lambda e: (e.get(field) is not None, e.get(field) or 0, e["ARN"]),
                 reverse=sort_order == "desc")  # fmt: skip
    page = entries[offset : offset + max_results]
    result: dict[str, Any] = {"SecretList": page}
    if offset + max_results < len(entries):
        result["NextToken"] = _token(offset + max_results)
    return result
