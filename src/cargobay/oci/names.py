"""Repository names and tags, validated by the distribution-spec's regular expressions."""

from __future__ import annotations

import re

from cargobay.oci.errors import NameInvalid, TagInvalid

# <name>: path components separated by '/', each [a-z0-9]+ joined by '.', '_', '__' or '-'s.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# Kept below the common 255-character limit on whole references (host + name + tag).
MAX_NAME_LENGTH = 255


def validate_name(name: str) -> str:
    # fullmatch: `$` alone would also accept a trailing newline.
    if len(name) > MAX_NAME_LENGTH or not NAME_RE.fullmatch(name):
        raise NameInvalid("invalid repository name", detail={"name": name})
    return name


def validate_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise TagInvalid("invalid tag", detail={"tag": tag})
    return tag
