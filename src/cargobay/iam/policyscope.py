"""The registry policy scope (account setting REGISTRY_POLICY_SCOPE): which actions a registry
policy may name. V1, ECR's original scope, enforces only the replication and pull-through
cache actions at the registry level, and a policy naming any other action is refused; V2 (the
default) takes every ECR action."""

from __future__ import annotations

import re

from cargobay.iam.policy import Policy, PolicyError

SETTING = "REGISTRY_POLICY_SCOPE"
V1, V2 = "V1", "V2"
V1_ACTIONS = ("ecr:ReplicateImage", "ecr:BatchImportUpstreamImage", "ecr:CreateRepository")


def _covers(pattern: str, action: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, action, re.IGNORECASE) is not None


def check_registry_policy(policy: Policy, scope: str) -> None:
    """Refuse a registry policy its scope does not allow (PolicyError names why)."""
    for i, statement in enumerate(policy.statements):
        for action in statement.actions:
            service = action.split(":", 1)[0].lower() if ":" in action else action
            if service not in ("ecr", "*"):
                raise PolicyError(f"Statement[{i}] names {action!r}, which is not an ECR action")
            if scope != V1:
                continue
            if statement.not_action:
                raise PolicyError(f"Statement[{i}]: NotAction is not supported with scope V1")
            if not any(_covers(action, allowed) for allowed in V1_ACTIONS):
                raise PolicyError(
                    f"Statement[{i}] names {action!r}; registry policy scope V1 only takes "
                    + ", ".join(V1_ACTIONS)
                )


def applies(scope: str | None, action: str) -> bool:
    """Whether the registry policy takes part in deciding `action` under `scope`."""
    return scope != V1 or action.lower() in {a.lower() for a in V1_ACTIONS}
