"""Registry scanning configuration: ECR's validation, its WILDCARD filters and which rule
applies to a repository; account setting names and values."""

from __future__ import annotations

import pytest

from cargobay.errors import ScanningConfigurationInvalid
from cargobay.scans import config


def _rule(frequency: str, *filters: str) -> dict:
    return {
        "scanFrequency": frequency,
        "repositoryFilters": [{"filter": f, "filterType": "WILDCARD"} for f in filters],
    }


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("prod*", "prod", True),
        ("prod*", "prod-repo", True),
        ("prod*", "prodrepo", True),
        ("prod*", "repo-prod", False),
        ("*", "anything/at/all", True),
        ("team/*/api", "team/a/b/api", True),
        ("team/*/api", "team/api", False),
        ("app", "my-app-repo", True),  # no wildcard: the name contains the filter
        ("app", "web", False),
        ("a.b", "axb", False),  # a dot is a dot
    ],
)
def test_wildcard_filters(pattern: str, name: str, expected: bool) -> None:
    assert config.matches(pattern, name) is expected


def test_continuous_beats_scan_on_push_and_the_repository_flag_still_counts() -> None:
    parsed = config.parse(
        {
            "scanType": "ENHANCED",
            "rules": [_rule("SCAN_ON_PUSH", "team/*"), _rule("CONTINUOUS_SCAN", "team/api*")],
        }
    )
    assert parsed.frequency("team/api-v2", False) == ("CONTINUOUS_SCAN", ["team/api*"])
    assert parsed.frequency("team/web", False) == ("SCAN_ON_PUSH", ["team/*"])
    assert parsed.frequency("other", True) == ("SCAN_ON_PUSH", [])
    assert parsed.frequency("other", False) == ("MANUAL", [])
    assert parsed.shape()["rules"][1] == _rule("CONTINUOUS_SCAN", "team/api*")
    assert config.load("ENHANCED", parsed.shape()["rules"]) == parsed
    assert config.parse({}).shape() == {"scanType": "BASIC", "rules": []}


@pytest.mark.parametrize(
    "payload",
    [
        {"scanType": "FAST"},
        {"rules": [_rule("CONTINUOUS_SCAN", "x")]},  # continuous scanning needs ENHANCED
        {"rules": [_rule("SCAN_ON_PUSH", "a"), _rule("SCAN_ON_PUSH", "b")]},
        {"rules": [_rule("SCAN_ON_PUSH", "a")] * 3},
        {"rules": [_rule("HOURLY", "a")]},
        {"rules": [_rule("SCAN_ON_PUSH", "Upper")]},
        {"rules": [_rule("SCAN_ON_PUSH", "a" * 256)]},
        {"rules": [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "a"}]}]},
        {"rules": "none"},
    ],
)
def test_invalid_configurations_are_refused(payload: dict) -> None:
    with pytest.raises(ScanningConfigurationInvalid):
        config.parse(payload)


def test_account_settings_take_ecrs_names_and_values() -> None:
    config.check_setting("BASIC_SCAN_TYPE_VERSION", "AWS_NATIVE", putting=True)
    config.check_setting("REGISTRY_POLICY_SCOPE", "V1", putting=True)
    config.check_setting("BLOB_MOUNTING", "DISABLED", putting=True)
    with pytest.raises(ScanningConfigurationInvalid):
        config.check_setting("BASIC_SCAN_TYPE_VERSION", "TRIVY", putting=True)
    with pytest.raises(ScanningConfigurationInvalid):
        config.check_setting("SCAN_EVERYTHING")
