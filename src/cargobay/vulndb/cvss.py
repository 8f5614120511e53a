"""CVSS base scores from vector strings (v3.0, v3.1 and v2), and ECR's severity names.

OSV records carry the vector, not the score; the base score formulas of FIRST's
specifications turn one into the other. v4 vectors need the specification's lookup tables and
are not scored (a record's own severity rating is used instead).
"""

from __future__ import annotations

import math

SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED")

_V3 = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_V3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}

_V2 = {
    "AV": {"L": 0.395, "A": 0.646, "N": 1.0},
    "AC": {"H": 0.35, "M": 0.61, "L": 0.71},
    "Au": {"M": 0.45, "S": 0.56, "N": 0.704},
    "C": {"N": 0.0, "P": 0.275, "C": 0.660},
}


def _metrics(vector: str) -> dict[str, str]:
    out = {}
    for part in vector.strip().split("/"):
        key, sep, value = part.partition(":")
        if sep:
            out[key] = value
    return out


def _roundup_31(value: float) -> float:
    """CVSS 3.1's Roundup: the smallest one-decimal number >= value, immune to float noise."""
    scaled = round(value * 100000)
    if scaled % 10000 == 0:
        return scaled / 100000
    return (math.floor(scaled / 10000) + 1) / 10


def v3_base_score(vector: str) -> float:
    m = _metrics(vector)
    version = m.get("CVSS", "3.1")
    if not version.startswith("3"):
        raise ValueError(f"not a CVSS v3 vector: {vector!r}")
    try:
        scope = m["S"]
        impact_parts = [_V3["C"][m[k]] for k in ("C", "I", "A")]
        exploitability = (
            8.22 * _V3["AV"][m["AV"]] * _V3["AC"][m["AC"]] * _V3_PR[scope][m["PR"]]
        ) * _V3["UI"][m["UI"]]
    except KeyError as exc:
        raise ValueError(f"incomplete CVSS v3 vector: {vector!r}") from exc
    iss = 1 - (1 - impact_parts[0]) * (1 - impact_parts[1]) * (1 - impact_parts[2])
    changed = 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    impact = 6.42 * iss if scope == "U" else changed
    if impact <= 0:
        return 0.0
    total = impact + exploitability if scope == "U" else 1.08 * (impact + exploitability)
    if version == "3.0":
        return math.ceil(min(total, 10) * 10) / 10
    return _roundup_31(min(total, 10))


def v2_base_score(vector: str) -> float:
    m = _metrics(vector.removeprefix("(").removesuffix(")"))
    try:
        c, i, a = (_V2["C"][m[k]] for k in ("C", "I", "A"))
        exploitability = 20 * _V2["AV"][m["AV"]] * _V2["AC"][m["AC"]] * _V2["Au"][m["Au"]]
    except KeyError as exc:
        raise ValueError(f"incomplete CVSS v2 vector: {vector!r}") from exc
    impact = 10.41 * (1 - (1 - c) * (1 - i) * (1 - a))
    f = 0 if impact == 0 else 1.176
    return round(((0.6 * impact) + (0.4 * exploitability) - 1.5) * f + 1e-9, 1)


def severity_from_score(score: float) -> str:
    if score >= 9.0:
        return "CRITICAL"
    if score >= 7.0:
        return "HIGH"
    if score >= 4.0:
        return "MEDIUM"
    if score > 0.0:
        return "LOW"
    return "INFORMATIONAL"


# Ratings databases use instead of scores (GitHub, Ubuntu, Debian's urgency, Alpine...).
_RATINGS = {
    "critical": "CRITICAL",
    "high": "HIGH",
    "important": "HIGH",
    "moderate": "MEDIUM",
    "medium": "MEDIUM",
    "low": "LOW",
    "negligible": "INFORMATIONAL",
    "unimportant": "INFORMATIONAL",
    "informational": "INFORMATIONAL",
    "none": "INFORMATIONAL",
}


def severity_from_rating(rating: object) -> str | None:
    if not isinstance(rating, str):
        return None
    return _RATINGS.get(rating.strip().lower())
