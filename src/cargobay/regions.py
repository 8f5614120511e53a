"""The region a request is served in, for a deployment answering for several (`regions_served`).

A request's region is decided once, at its door: the SigV4 credential scope on the AWS doors
(`iam.awsrequest.signed_principal`, which accepts only served regions), the ECR-form host
(`<account>.dkr.ecr.<region>.<host_suffix>`) on `/v2/`. The door records it here, in a context
variable that belongs to the request's own task; whatever answers for that request (ARNs,
repository URIs, which repositories a name finds) reads it with `current`. Outside a request
(background jobs, the admin CLI) it is the default region.

Repositories are regional, as in ECR. Rows of the default region are stored with the region
key "" (`key`), so a deployment that never served more than one region keeps every repository
it had whatever its `region` setting says, and no migration needs to know that setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The repository region key (`key`) of the request being served; "" (the default) outside one.
_CURRENT: ContextVar[str] = ContextVar("cargobay_region", default="")

DEFAULT_KEY = ""

# An ECR-form registry host: <account>.dkr.ecr.<region>.<suffix>.
_ECR_HOST = re.compile(r"([0-9]{12})\.dkr\.ecr\.([a-z]{2}(?:-[a-z]+)+-[0-9])\.(.+)")


def use(region: str, default: str) -> None:
    """Serve the rest of this request (its task) in `region`; `default` is the deployment's."""
    _CURRENT.set(key(region, default))


@contextmanager
def serving_key(stored: str) -> Iterator[None]:
    """Serve the block in the region a stored key (`key`) names: a queued task runs in the
    region of the request that queued it (`jobs.queue`)."""
    token = _CURRENT.set(stored)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current(default: str) -> str:
    """The region of the request being served; `default` (the deployment's) outside one."""
    return from_key(_CURRENT.get(), default)


def current_key() -> str:
    """The repository region key (`key`) of the request being served; "" outside one."""
    return _CURRENT.get()


def key(region: str, default: str) -> str:
    """How repository rows store `region`: "" for the deployment's default region."""
    return DEFAULT_KEY if region == default else region


def from_key(stored: str, default: str) -> str:
    """The region a stored region key stands for."""
    return stored or default


def from_host(host: str, suffix: str) -> str | None:
    """The region an ECR-form `host` names when it ends in `suffix` (port ignored); None for
    any other host."""
    if not suffix:
        return None
    match = _ECR_HOST.fullmatch(host.lower().split(":", 1)[0])
    if match is None or match.group(3) != suffix.lower().split(":", 1)[0]:
        return None
    return match.group(2)
