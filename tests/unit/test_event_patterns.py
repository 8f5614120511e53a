"""EventBridge event patterns: the documented operators, and clear errors for malformed ones."""

from __future__ import annotations

import pytest

from cargobay.events.pattern import PatternError, compile_pattern, matches

PUSH = {
    "version": "0",
    "id": "13cde686-328b-6117-af20-0e5566167482",
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "time": "2019-11-16T01:54:34Z",
    "region": "us-west-2",
    "resources": [],
    "detail": {
        "result": "SUCCESS",
        "repository-name": "team/app",
        "image-digest": "sha256:7f5b",
        "action-type": "PUSH",
        "image-tag": "latest",
        "size": 42,
        "client": "10.0.0.7",
        "labels": ["blue", "green"],
        "empty": "",
        "nothing": None,
        "flag": True,
        "layers": [{"media": "tar+gzip", "size": 10}, {"media": "tar+zstd", "size": 900}],
    },
}


def test_issue_example_matches_a_push_and_not_a_delete() -> None:
    pattern = compile_pattern(
        '{"source":["aws.ecr"],"detail-type":["ECR Image Action"],'
        '"detail":{"action-type":["PUSH"]}}'
    )
    assert pattern.matches(PUSH)
    delete = {**PUSH, "detail": {**PUSH["detail"], "action-type": "DELETE"}}
    assert not pattern.matches(delete)


def test_no_pattern_matches_everything() -> None:
    assert matches(None, PUSH)


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # exact values; a list is OR; fields are AND
        ({"source": ["aws.ecr", "aws.s3"]}, True),
        ({"source": ["aws.s3"]}, False),
        ({"source": ["aws.ecr"], "region": ["eu-west-1"]}, False),
        ({"detail": {"size": [42]}}, True),
        ({"detail": {"size": [42.0]}}, True),
        ({"detail": {"size": ["42"]}}, False),
        ({"detail": {"flag": [True]}}, True),
        ({"detail": {"flag": [1]}}, False),
        ({"detail": {"empty": [""]}}, True),
        ({"detail": {"empty": [None]}}, False),
        ({"detail": {"nothing": [None]}}, True),
        ({"detail": {"nothing": [""]}}, False),
        # an event array matches when any element does
        ({"detail": {"labels": ["green"]}}, True),
        ({"detail": {"labels": ["red"]}}, False),
        # arrays of objects
        ({"detail": {"layers": {"media": ["tar+zstd"]}}}, True),
        ({"detail": {"layers": {"media": ["tar"]}}}, False),
        # prefix / suffix, with and without case
        ({"detail": {"repository-name": [{"prefix": "team/"}]}}, True),
        ({"detail": {"repository-name": [{"prefix": "TEAM/"}]}}, False),
        ({"detail": {"repository-name": [{"prefix": {"equals-ignore-case": "TEAM/"}}]}}, True),
        ({"detail": {"repository-name": [{"suffix": "/app"}]}}, True),
        ({"detail": {"repository-name": [{"suffix": {"equals-ignore-case": "/APP"}}]}}, True),
        ({"detail": {"repository-name": [{"suffix": "/web"}]}}, False),
        ({"detail": {"size": [{"prefix": "4"}]}}, False),  # prefix is for strings
        # equals-ignore-case
        ({"detail": {"action-type": [{"equals-ignore-case": "push"}]}}, True),
        ({"detail": {"action-type": [{"equals-ignore-case": "pus"}]}}, False),
        # anything-but: value, list, number, prefix, suffix, ignore-case, wildcard
        ({"detail": {"action-type": [{"anything-but": "DELETE"}]}}, True),
        ({"detail": {"action-type": [{"anything-but": "PUSH"}]}}, False),
        ({"detail": {"action-type": [{"anything-but": ["DELETE", "PUSH"]}]}}, False),
        ({"detail": {"size": [{"anything-but": 42}]}}, False),
        ({"detail": {"size": [{"anything-but": [1, 2]}]}}, True),
        ({"detail": {"repository-name": [{"anything-but": {"prefix": "team/"}}]}}, False),
        ({"detail": {"repository-name": [{"anything-but": {"prefix": "ops/"}}]}}, True),
        ({"detail": {"repository-name": [{"anything-but": {"suffix": "/app"}}]}}, False),
        ({"detail": {"action-type": [{"anything-but": {"equals-ignore-case": ["push"]}}]}}, False),
        ({"detail": {"repository-name": [{"anything-but": {"wildcard": "*/ap*"}}]}}, False),
        ({"detail": {"repository-name": [{"anything-but": {"wildcard": "ops/*"}}]}}, True),
        ({"detail": {"missing": [{"anything-but": "x"}]}}, False),  # needs the field
        ({"detail": {"labels": [{"anything-but": "blue"}]}}, True),  # "green" is not blue
        # exists
        ({"detail": {"image-tag": [{"exists": True}]}}, True),
        ({"detail": {"image-tag": [{"exists": False}]}}, False),
        ({"detail": {"missing": [{"exists": False}]}}, True),
        ({"detail": {"missing": [{"exists": True}]}}, False),
        ({"nowhere": {"deeper": [{"exists": False}]}}, True),
        ({"detail": {"nothing": [{"exists": True}]}}, True),  # null is a value
        ({"detail": [{"exists": True}]}, False),  # leaves only: detail is an object
        ({"resources": [{"exists": False}]}, True),  # an empty array has no leaves
        # numeric
        ({"detail": {"size": [{"numeric": [">", 0, "<=", 42]}]}}, True),
        ({"detail": {"size": [{"numeric": [">", 0, "<", 42]}]}}, False),
        ({"detail": {"size": [{"numeric": ["=", 42]}]}}, True),
        ({"detail": {"size": [{"numeric": [">=", 43]}]}}, False),
        ({"detail": {"repository-name": [{"numeric": [">", 0]}]}}, False),
        ({"detail": {"flag": [{"numeric": ["=", 1]}]}}, False),  # true is not a number
        ({"detail": {"layers": {"size": [{"numeric": [">", 500]}]}}}, True),
        # wildcard
        ({"detail": {"repository-name": [{"wildcard": "team/*"}]}}, True),
        ({"detail": {"repository-name": [{"wildcard": "*app"}]}}, True),
        ({"detail": {"repository-name": [{"wildcard": "t*m/*p"}]}}, True),
        ({"detail": {"repository-name": [{"wildcard": "t*x*p"}]}}, False),
        ({"detail": {"repository-name": [{"wildcard": "team/app"}]}}, True),
        ({"detail": {"repository-name": [{"wildcard": "team/ap"}]}}, False),
        ({"detail": {"image-tag": [{"wildcard": "lat*est"}]}}, True),  # star matches nothing
        ({"detail": {"image-tag": [{"wildcard": "latest*t"}]}}, False),  # pieces cannot overlap
        # cidr
        ({"detail": {"client": [{"cidr": "10.0.0.0/24"}]}}, True),
        ({"detail": {"client": [{"cidr": "10.0.1.0/24"}]}}, False),
        # $or at the top and nested
        ({"$or": [{"source": ["aws.s3"]}, {"detail": {"size": [42]}}]}, True),
        ({"$or": [{"source": ["aws.s3"]}, {"detail": {"size": [7]}}]}, False),
        (
            {
                "source": ["aws.ecr"],
                "detail": {"$or": [{"image-tag": ["v1"]}, {"result": ["SUCCESS"]}]},
            },
            True,
        ),
        # a pattern expecting an object where the event has a string
        ({"source": {"inner": ["x"]}}, False),
    ],
)
def test_operators(pattern: dict, expected: bool) -> None:
    assert compile_pattern(pattern).matches(PUSH) is expected


def test_wildcard_escapes() -> None:
    event = {"k": "a*b\\c"}
    assert matches({"k": [{"wildcard": "a\\*b\\\\c"}]}, event)
    assert matches({"k": [{"wildcard": "a\\**"}]}, event)
    assert not matches({"k": [{"wildcard": "a\\*c*"}]}, event)


class _CountingStr(str):
    finds = 0

    def find(self, *args):  # type: ignore[override]
        type(self).finds += 1
        return super().find(*args)


def test_wildcard_searches_each_piece_once_without_backtracking() -> None:
    """A backtracking matcher takes exponential time on this input; this one looks for each
    literal piece once, left to right."""
    pieces = 30
    pattern = compile_pattern({"k": [{"wildcard": "*a" * pieces + "*b"}]})
    value = _CountingStr("a" * 5000)
    assert not pattern.matches({"k": value})
    assert _CountingStr.finds <= pieces
    assert pattern.matches({"k": _CountingStr("a" * 5000 + "b")})


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ({}, "at least one field"),
        ({"source": "aws.ecr"}, "must be in an array"),
        ({"source": []}, "list of values is empty"),
        ({"source": [["nested"]]}, "cannot be nested"),
        ({"detail": {}}, "at least one field"),
        ({"source": [{"prefix": 1}]}, "prefix needs a string"),
        ({"source": [{"prefix": {"other": "x"}}]}, "equals-ignore-case"),
        ({"source": [{"bogus": 1}]}, 'unknown operator "bogus"'),
        ({"source": [{"prefix": "a", "suffix": "b"}]}, "one operator"),
        ({"source": [{"exists": "yes"}]}, "exists takes true or false"),
        ({"n": [{"numeric": [">"]}]}, "numeric takes"),
        ({"n": [{"numeric": ["~", 1]}]}, "unknown operator"),
        ({"n": [{"numeric": [">", "1"]}]}, "not a number"),
        ({"n": [{"numeric": [">", 1, ">", 2]}]}, "more than one lower bound"),
        ({"n": [{"numeric": ["<", 1, "<=", 2]}]}, "more than one upper bound"),
        ({"n": [{"numeric": [">", 5, "<", 1]}]}, "lower bound must be below"),
        ({"n": [{"numeric": ["=", 1, "<", 2]}]}, "cannot be combined"),
        ({"n": [{"numeric": [">", 6e9]}]}, "outside"),
        ({"n": [{"anything-but": []}]}, "list is empty"),
        ({"n": [{"anything-but": ["a", 1]}]}, "only one of those"),
        ({"n": [{"anything-but": {"prefix": "a", "suffix": "b"}}]}, "anything-but takes one"),
        ({"n": [{"anything-but": {"numeric": [">", 1]}}]}, "unknown operator"),
        ({"n": [{"wildcard": "a**b"}]}, "consecutive"),
        ({"n": [{"wildcard": "a\\b"}]}, "may be escaped"),
        ({"n": [{"cidr": "10.0.0.0/33"}]}, "cidr"),
        ({"$or": [{"a": ["x"]}]}, "at least two"),
        ({"$or": {"a": ["x"]}}, "at least two"),
    ],
)
def test_malformed_patterns_are_refused_with_a_reason(pattern, message: str) -> None:
    with pytest.raises(PatternError, match=message.replace("(", r"\(")):
        compile_pattern(pattern)


def test_error_names_the_field() -> None:
    with pytest.raises(PatternError, match=r"detail\.action-type"):
        compile_pattern({"detail": {"action-type": "PUSH"}})
