"""`ECR Pull Through Cache Action` FAILED: one event per failed attempt to fill the cache from
its upstream (a manifest fetch or tag re-check, a blob fetch), in the shape of the SUCCESS
event `events.hooks` emits when the cache stores an image, with `failure-code` and
`failure-reason` added.

ECR documents the two fields but not their values; the codes here name the failure's kind, so
a rule on the event bus can tell an expired credential from an upstream outage. The reason is
the upstream client's message: it names the upstream and the status, never a credential.
"""

from __future__ import annotations

import logging

from cargobay.errors import SecretNotFound, UnableToAccessSecret, UnableToDecryptSecretValue
from cargobay.events import model, outbox
from cargobay.metadata.db import Database
from cargobay.pullthrough.rules import Rule
from cargobay.upstream import errors as upstream_errors

log = logging.getLogger("cargobay.pullthrough")

# The most specific class first: DigestMismatch and the others are all UpstreamErrors.
FAILURE_CODES: tuple[tuple[type[BaseException], str], ...] = (
    (upstream_errors.Unauthorized, "UPSTREAM_AUTHENTICATION_FAILED"),
    (upstream_errors.RateLimited, "UPSTREAM_RATE_LIMITED"),
    (upstream_errors.UpstreamUnavailable, "UPSTREAM_UNAVAILABLE"),
    (upstream_errors.NotFound, "UPSTREAM_IMAGE_NOT_FOUND"),
    (upstream_errors.DigestMismatch, "DIGEST_MISMATCH"),
    (upstream_errors.BadResponse, "UPSTREAM_BAD_RESPONSE"),
    (SecretNotFound, "SECRET_NOT_FOUND"),
    (UnableToDecryptSecretValue, "SECRET_DECRYPTION_FAILED"),
    (UnableToAccessSecret, "SECRET_ACCESS_FAILED"),
)
MAX_REASON = 1024


def failure_code(exc: BaseException) -> str:
    for cls, code in FAILURE_CODES:
        if isinstance(exc, cls):
            return code
    return "INTERNAL_FAILURE"  # the store, say: the upstream answered, the cache failed


def failure_reason(exc: BaseException) -> str:
    why = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {why}"[:MAX_REASON]


async def emit_failed(
    db: Database,
    region: str,
    rule: Rule,
    repository: str,
    exc: BaseException,
    *,
    tag: str | None = None,
    digest: str | None = None,
    layer: str | None = None,
) -> None:
    """Commit the FAILED event to the outbox (delivered like every other event). `tag` or
    `digest` names the image asked for; a failed blob fetch names its `layer` in the reason
    (`image-digest` is an image's). Never raises: a failure to record the failure must not
    change what the puller is answered."""
    reason = failure_reason(exc)
    event = model.pull_through_cache_action(
        account=rule.registry_id,
        region=region,
        repository=repository,
        repository_prefix=rule.prefix,
        upstream_registry_url=rule.upstream_url,
        sync_status="FAILED",
        tag=tag,
        digest=digest,
        failure_code=failure_code(exc),
        failure_reason=reason if layer is None else f"layer {layer}: {reason}"[:MAX_REASON],
    )
    try:
        async with db.write() as conn:
            await outbox.emit(conn, event)
    except Exception:
        log.exception("recording the failed fill of %s failed", repository)
