"""Time policy evaluation on the worst legal policies (issue 11's ReDoS); target < 1 ms.

Run: `PYTHONPATH=src python3 -m benchmarks.policy_eval`. It builds, at the AWS size caps:

- a repository policy (10,240 characters) whose Deny statement lists as many
  ``repository/*a*a*a*a*a*a*?N`` resources as fit, asked about a 256-character repository;
- the same with ``arn:*:*:*:*:*:*a*a*a*a*a*a*?N`` resources, which share no literal prefix;
- a repository policy of the same size made of ``StringLike`` condition values;
- a user's inline policies at IAM's 2,048 non-whitespace character quota,

and prints the mean and worst time of :func:`cargobay.iam.policy.decide` per request. It is a
measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from cargobay.iam.policy import AuthRequest, Policy, decide, parse_policy

ACCOUNT = "000000000000"
PREFIX = f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/"
REPO = PREFIX + "a" * 256
EVIL = PREFIX + "*a*a*a*a*a*a*?"
# No literal prefix to compare as a string: every character of the pattern is a state.
BARE = "arn:*:*:*:*:*:*a*a*a*a*a*a*?"
REPOSITORY_CAP = 10_240
USER_CAP = 2_048
TARGET_MS = 1.0


def _fill(make: Callable[[list[str]], dict[str, Any]], item: Callable[[int], str], cap: int):
    items: list[str] = []
    while True:
        items.append(item(len(items)))
        if len(json.dumps(make(items))) > cap:
            items.pop()
            return json.dumps(make(items))


def _resources(items: list[str]) -> dict[str, Any]:
    statement = {"Effect": "Deny", "Principal": "*", "Action": "ecr:*", "Resource": items}
    return {"Version": "2012-10-17", "Statement": [statement]}


def _conditions(items: list[str]) -> dict[str, Any]:
    test = {"StringLike": {"aws:PrincipalTag/team": items}}
    statement = {"Effect": "Deny", "Principal": "*", "Action": "ecr:*", "Condition": test}
    return {"Version": "2012-10-17", "Statement": [statement]}


def _identity(items: list[str]) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": ["ecr:*"], "Resource": items}
    return {"Version": "2012-10-17", "Statement": [statement]}


def _time(identity: list[Policy], resource: list[Policy], rounds: int) -> tuple[float, float]:
    request = AuthRequest(
        f"arn:aws:iam::{ACCOUNT}:user/u",
        ACCOUNT,
        "ecr:BatchGetImage",
        REPO,
        ACCOUNT,
        {"aws:PrincipalTag/team": "a" * 256},
    )
    worst = 0.0
    start = time.perf_counter()
    for _ in range(rounds):
        t0 = time.perf_counter()
        decide(request, identity, resource)
        worst = max(worst, time.perf_counter() - t0)
    mean = (time.perf_counter() - start) / rounds
    return mean * 1000, worst * 1000


def main(rounds: int = 200) -> dict[str, tuple[float, float]]:
    cases = {
        "repository policy, wildcard resources": (
            [],
            [
                parse_policy(
                    _fill(_resources, lambda i: f"{EVIL}{i}", REPOSITORY_CAP), resource_policy=True
                )
            ],
        ),
        "repository policy, resources without prefix": (
            [],
            [
                parse_policy(
                    _fill(_resources, lambda i: f"{BARE}{i}", REPOSITORY_CAP),
                    resource_policy=True,
                )
            ],
        ),
        "repository policy, StringLike values": (
            [],
            [
                parse_policy(
                    _fill(_conditions, lambda i: "*a" * 8 + f"*?{i}", REPOSITORY_CAP),
                    resource_policy=True,
                )
            ],
        ),
        "user inline policy at the quota": (
            [parse_policy(_fill(_identity, lambda i: f"{EVIL}{i}", USER_CAP))],
            [],
        ),
    }
    results = {}
    for name, (identity, resource) in cases.items():
        mean, worst = _time(identity, resource, rounds)
        results[name] = (mean, worst)
        verdict = "ok" if mean < TARGET_MS else "OVER TARGET"
        print(f"{name:40s} mean {mean:7.3f} ms  worst {worst:7.3f} ms  ({verdict})")
    return results


if __name__ == "__main__":
    main()
