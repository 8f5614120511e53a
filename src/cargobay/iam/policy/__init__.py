"""The AWS IAM policy language: parsing and evaluation with AWS semantics.

One engine serves the three kinds of policy cargobay stores:

- identity policies (inline user policies): no ``Principal``; ``Resource``/``NotResource`` required;
- ECR repository policies: resource-based, ``Principal``/``NotPrincipal`` required, no ``Resource``
  needed (the statement applies to the repository the policy is attached to);
- ECR registry policies: resource-based, ``Principal`` required, ``Resource`` names repository ARNs.

:func:`parse_policy` validates a document and compiles its patterns once; :func:`statement_effect`
asks one policy about one request; :func:`decide` combines identity and resource policies the way
AWS does (explicit Deny wins; same account needs one Allow; cross account needs both sides).

The package is pure: no I/O, and nothing from the rest of cargobay except :class:`Principal`
and :mod:`cargobay.wildcards`. Its modules: :mod:`.document` (parsing and validation),
:mod:`.evaluate` (:func:`decide`), :mod:`.conditions` (condition operators),
:mod:`.principals`, :mod:`.patterns` (wildcard and ARN matching), :mod:`.variables`
(``${...}``), :mod:`.request` (the request and its context) and :mod:`.errors`.
"""

from __future__ import annotations

from cargobay.iam.policy.conditions import Condition
from cargobay.iam.policy.document import VERSIONS, Policy, Statement, parse_policy
from cargobay.iam.policy.errors import PolicyError
from cargobay.iam.policy.evaluate import Decision, decide, statement_effect
from cargobay.iam.policy.patterns import _AnyOf as _AnyOf  # for tests of the matcher
from cargobay.iam.policy.patterns import _Pattern as _Pattern  # for tests of the matcher
from cargobay.iam.policy.principals import PrincipalSpec
from cargobay.iam.policy.request import AuthRequest
from cargobay.iam.policy.variables import _parse_variable as _parse_variable  # for tests

__all__ = [
    "VERSIONS",
    "AuthRequest",
    "Condition",
    "Decision",
    "Policy",
    "PolicyError",
    "PrincipalSpec",
    "Statement",
    "decide",
    "parse_policy",
    "statement_effect",
]
