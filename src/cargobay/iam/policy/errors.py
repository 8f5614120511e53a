"""The one error the policy language raises: a document that does not parse or validate."""

from __future__ import annotations


class PolicyError(ValueError):
    """A policy document is malformed; the message names the element and the problem."""
