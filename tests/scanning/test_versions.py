"""Version orders per ecosystem: known tricky cases and order properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cargobay.vulndb.maven import maven_compare
from cargobay.vulndb.osversions import apk_compare, dpkg_compare, rpm_compare, rpmvercmp
from cargobay.vulndb.versions import comparator, pep440_compare, semver_compare

# Each list is in ascending order; equal neighbours are given as a tuple.
ORDERED = {
    dpkg_compare: [
        "1.0~~",
        "1.0~~a",
        "1.0~",
        "1.0",
        "1.0-1~deb12u1",
        "1.0-1",
        "1.0-1+b1",
        "1.0a",
        "1.0+dfsg",
        "1.0.1",
        "1.10",
        "2:0.1",
    ],
    rpm_compare: [
        "1.0~rc1-1",
        "1.0-1",
        "1.0^git1-1",
        "1.0a-1",
        "1.0.1-1",
        "1.9-1",
        "1.10-1",
        "1:0.1-1",
    ],
    apk_compare: [
        "1.2_alpha1",
        "1.2_beta",
        "1.2_rc2",
        "1.2",
        "1.2-r1",
        "1.2_p1",
        "1.2a",
        "1.2.1",
        "1.10",
    ],
    pep440_compare: ["1.0.dev1", "1.0a1", "1.0rc1", "1.0", "1.0.post1", "1.1", "2!0.1"],
    semver_compare: [
        "v0.0.0-20191109021931-daa7c04131f5",
        "0.0.1",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "v1.2.4-0.20191109021931-daa7c04131f5",
        "v1.2.4",
        "v2.2.8+incompatible",
    ],
    maven_compare: [
        "1-alpha-1",
        "1-alpha2",
        "1-beta",
        "1-milestone",
        "1-rc",
        "1-snapshot",
        "1",
        "1-sp",
        "1-abc",
        "1-1",
        "1.0.1",
        "1.1",
        "2.14.1",
        "2.15.0",
    ],
}

EQUAL = {
    dpkg_compare: [("0:1.0", "1.0"), ("1.0-0", "1.0-0"), ("1.01", "1.1")],
    rpm_compare: [("0:1.0-1", "1.0-1"), ("1.0-1", "1.0"), ("1.0_1", "1.0.1")],
    apk_compare: [("1.2-r0", "1.2")],
    pep440_compare: [("1.0", "1.0.0"), ("1.0a1", "1.0alpha1")],
    semver_compare: [("v1.2.3", "1.2.3"), ("1.2.3+build", "1.2.3")],
    maven_compare: [("1", "1.0"), ("1.0", "1-ga"), ("1-cr1", "1-rc1"), ("1-final", "1.0.0")],
}


@pytest.mark.parametrize("compare", list(ORDERED), ids=lambda f: f.__name__)
def test_known_orders(compare) -> None:
    versions = ORDERED[compare]
    for i, low in enumerate(versions):
        for high in versions[i + 1 :]:
            assert compare(low, high) == -1, (low, high)
            assert compare(high, low) == 1, (high, low)
    for a, b in EQUAL[compare]:
        assert compare(a, b) == 0, (a, b)


def test_rpmvercmp_reference_cases() -> None:
    # From rpm's own test table (rpmvercmp.at).
    cases = [
        ("1.0", "1.0", 0),
        ("1.0", "2.0", -1),
        ("2.0.1", "2.0.1a", -1),
        ("5.5p1", "5.5p10", -1),
        ("10xyz", "10.1xyz", -1),
        ("xyz10", "xyz10.1", -1),
        ("1.0aa", "1.0a", 1),
        ("10.0001", "10.1", 0),
        ("6.0.rc1", "6.0", 1),
        ("10b2", "10a1", 1),
        ("1.0~rc1", "1.0~rc1~git123", 1),
        ("1.0^", "1.0", 1),
        ("1.0^git1", "1.0^git1~pre", 1),
        ("a", "1", -1),
    ]
    for a, b, expected in cases:
        assert rpmvercmp(a, b) == expected, (a, b)


def test_ecosystem_comparators() -> None:
    assert comparator("Debian:12") is dpkg_compare
    assert comparator("Alpine:v3.18") is apk_compare
    assert comparator("Rocky Linux:9") is rpm_compare
    assert comparator("Go") is semver_compare
    assert comparator("Hackage") is None


def test_invalid_versions_raise_value_errors() -> None:
    for compare, bad in [
        (pep440_compare, "not a version"),
        (semver_compare, "1.2.3.4.5"),
        (apk_compare, "1.2-beta"),
    ]:
        with pytest.raises(ValueError):
            compare(bad, "1.0")


debian_versions = st.from_regex(r"\A([0-9]:)?[0-9][0-9a-z.+~]{0,6}(-[0-9a-z.+~]{1,4})?\Z")
rpm_versions = st.from_regex(r"\A([0-9]:)?[0-9][0-9a-zA-Z.~^_]{0,6}(-[0-9a-z.]{1,4})?\Z")
semver_versions = st.from_regex(
    r"\Av?[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}(-[0-9a-z]{1,3}(\.[0-9a-z]{1,3})?)?\Z"
)
maven_versions = st.from_regex(r"\A[0-9]{1,2}([.-]([0-9]{1,2}|alpha|beta|rc|sp|ga|a1|x))*\Z")
apk_versions = st.from_regex(
    r"\A[0-9]{1,2}(\.[0-9]{1,2}){0,2}[a-c]?(_(alpha|rc|p)[0-9]?)?(-r[0-9])?\Z"
)

STRATEGIES = [
    (dpkg_compare, debian_versions),
    (rpm_compare, rpm_versions),
    (semver_compare, semver_versions),
    (maven_compare, maven_versions),
    (apk_compare, apk_versions),
]


@pytest.mark.parametrize("compare,versions", STRATEGIES, ids=lambda v: getattr(v, "__name__", ""))
def test_orders_are_antisymmetric_and_transitive(compare, versions) -> None:
    # Derandomised, so CI is reproducible; a random run found the Maven case below.
    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    @given(versions, versions, versions)
    def check(a: str, b: str, c: str) -> None:
        assert compare(a, a) == 0
        assert compare(a, b) == -compare(b, a)
        ordered = sorted([a, b, c], key=lambda v: _Key(v, compare))
        assert compare(ordered[0], ordered[1]) <= 0
        assert compare(ordered[1], ordered[2]) <= 0
        assert compare(ordered[0], ordered[2]) <= 0

    check()


def test_maven_order_of_release_alpha_and_unknown_qualifier_is_transitive() -> None:
    versions = ["0", "0.alpha", "0-x"]
    ordered = sorted(versions, key=lambda v: _Key(v, maven_compare))
    assert maven_compare(ordered[0], ordered[1]) <= 0
    assert maven_compare(ordered[1], ordered[2]) <= 0
    assert maven_compare(ordered[0], ordered[2]) <= 0


class _Key:
    __slots__ = ("compare", "value")

    def __init__(self, value: str, compare) -> None:
        self.value, self.compare = value, compare

    def __lt__(self, other: _Key) -> bool:
        return self.compare(self.value, other.value) < 0


def test_maven_order_is_transitive_over_a_grid_of_qualifiers_and_separators() -> None:
    """Every triple of short versions mixing numbers, qualifiers and both separators."""
    parts = ["0", "1", "alpha", "sp", "x", "ga"]
    versions = [a + sep + b for a in parts for sep in ".-" for b in parts] + parts
    for x in versions:
        for y in versions:
            assert maven_compare(x, y) == -maven_compare(y, x), (x, y)
            if maven_compare(x, y) > 0:
                continue
            for z in versions:
                if maven_compare(y, z) <= 0:
                    assert maven_compare(x, z) <= 0, (x, y, z)
