"""Settings: defaults, then a TOML file, then CARGOBAY_* environment variables, then the
command line. Everything is validated once at start-up so a bad value stops the process with
one clear line instead of failing a request later."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting that cannot be used; its message is shown to the operator as is."""


@dataclass(frozen=True)
class RegionEndpoint:
    """Another deployment serving `name` (a `[regions.<name>]` table): where replication
    sends images, and the access key it presents there."""

    name: str
    endpoint: str
    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class WebhookSetting:
    """One `[[webhooks]]` table of the config file (synced into the database at start-up)."""

    url: str
    secret: str = field(default="", repr=False)
    event_pattern: str | None = None
    account_id: str | None = None  # None: every account's events


def _webhooks(value: Any) -> tuple[WebhookSetting, ...]:
    """`[[webhooks]]` tables, or the same as a JSON list in CARGOBAY_WEBHOOKS."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except json.JSONDecodeError as exc:
            raise ConfigError(f"webhooks: not a JSON list: {exc}") from None
    if not isinstance(value, list):
        raise ConfigError("webhooks: use [[webhooks]] tables with url, secret, event_pattern")
    known = {"url", "secret", "event_pattern", "account_id"}
    entries = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise ConfigError("webhooks: every [[webhooks]] entry needs a url")
        unknown = set(entry) - known
        if unknown:
            raise ConfigError(f"webhooks: unknown key(s) {sorted(unknown)}")
        pattern = entry.get("event_pattern")
        if isinstance(pattern, dict):
            pattern = json.dumps(pattern)
        entries.append(
            WebhookSetting(
                url=entry["url"],
                secret=str(entry.get("secret", "")),
                event_pattern=pattern,
                account_id=entry.get("account_id"),
            )
        )
    return tuple(entries)


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    data_dir: Path = Path("./cargobay-data")
    # SQLAlchemy URL; empty means SQLite at <data_dir>/metadata.db.
    database: str = ""
    # Upgrade an out-of-date schema at start-up; unset: yes on SQLite, no on PostgreSQL (where
    # `cargobay db upgrade` is a deliberate step before rolling out new nodes).
    auto_upgrade: bool | None = None
    # Blob storage URL; empty means the filesystem under <data_dir>/blobs.
    storage: str = ""
    # Answer blob GETs with a 307 to a presigned object-store URL when the store has one.
    redirect_blob_downloads: bool = True
    workers: int = 0  # 0: one per CPU core
    tls_cert: Path | None = None
    tls_key: Path | None = None
    create_on_push: bool = True
    admin_access_key_id: str = ""
    admin_secret_access_key: str = field(default="", repr=False)
    # Key that seals stored access-key secrets; empty: <data_dir>/secret.key (created 0600).
    secret_key: str = field(default="", repr=False)
    account_id: str = "000000000000"
    region: str = "us-east-1"
    # Regions this deployment answers for (comma-separated, or a TOML list), each with its own
    # repositories and ARNs; `region` is always one of them, the default. Empty: `region` only.
    regions_served: str = ""
    # ECR-style hosts are <account>.dkr.ecr.<region>.<host_suffix>; empty: localhost:<port>.
    host_suffix: str = ""
    realm: str = "cargobay"
    # Load balancers (comma-separated CIDRs) whose X-Forwarded-For/-Proto are believed.
    trusted_proxies: str = ""
    log_level: str = "info"
    # Answer each request's number of database statements in X-Cargobay-Db-Statements (for
    # benchmarks and N+1 tests; off in production, where it would describe internals).
    count_db_statements: bool = False
    # Background jobs (run exactly once across workers and nodes).
    jobs_enabled: bool = True
    jobs_tick_seconds: int = 30
    # How often each worker looks for queued after-commit work (replication, scans).
    tasks_tick_seconds: int = 1
    # A failed task (a replication destination that is down, say) is retried after
    # `task_backoff_seconds`, doubling per attempt up to `task_max_backoff_seconds`.
    task_backoff_seconds: int = 2
    task_max_backoff_seconds: int = 300
    gc_interval_seconds: int = 3600
    gc_grace_seconds: int = 86400
    upload_expiry_seconds: int = 86400
    lifecycle_interval_seconds: int = 3600
    # Image scans running at once in one worker process (each streams layers in a thread).
    scan_concurrency: int = 1
    # Usage report prices (USD), as ECR bills: stored GB-month and GB transferred out.
    price_per_gb_month: str = "0.10"
    price_per_gb_transferred: str = "0.09"
    # Bytes only archived images reference (issue 18), per GB-month: ECR's archive price for
    # the first 150 TB a month equals the standard one.
    price_per_gb_month_archive: str = "0.10"
    # Largest manifest accepted through any door (bytes; ManifestService.put_image checks it).
    # The distribution-spec asks registries to accept at least 4 MiB.
    max_manifest_bytes: int = 4 * 1024 * 1024
    # Slow clients: time to send a request head (from connect, or from its first byte after a
    # previous request), longest pause inside a request body, how long an idle keep-alive
    # connection is kept (above a load balancer's idle timeout: ALB's is 60 s), and the
    # connections one address may hold per worker process (0: no limit; trusted proxies exempt).
    header_timeout_seconds: int = 60
    body_idle_timeout_seconds: int = 60
    keepalive_timeout_seconds: int = 75
    max_connections_per_ip: int = 0
    # Other regions' deployments, for replication (`[regions.<name>]` tables in the file, or
    # CARGOBAY_REGIONS as a JSON object of the same tables).
    regions: tuple[RegionEndpoint, ...] = ()
    # Pull-through cache: a cached tag is checked against its upstream (one HEAD) at most this
    # often; in between, and whenever the upstream fails, the cached copy is served.
    pull_through_recheck_seconds: int = 86400
    # Events and webhooks (events/): delivered by background loops, never on the request path.
    webhooks: tuple[WebhookSetting, ...] = ()
    webhook_retry_seconds: int = 86400  # retry a delivery this long, then mark it failed
    webhook_backoff_seconds: int = 2  # first retry delay, doubled per attempt (up to an hour)
    webhook_poll_seconds: int = 1  # how often each worker looks for due deliveries
    event_retention_days: int = 7  # finished deliveries and their events are kept this long
    # Audit trail (audit/): one record per API call, queryable with LookupEvents.
    audit_enabled: bool = True
    audit_pulls: bool = False  # also record manifest and blob GETs
    audit_retention_days: int = 90
    audit_flush_ms: int = 200  # records are buffered this long per process (0: write at once)
    # KMS (kms/): grants per KMS key, AWS's default quota (CreateGrant: LimitExceededException).
    kms_grants_per_key: int = 50_000

    @property
    def database_url(self) -> str:
        if self.database:
            return self.database
        return f"sqlite+aiosqlite:///{(self.data_dir / 'metadata.db').resolve()}"

    @property
    def upgrade_on_start(self) -> bool:
        if self.auto_upgrade is not None:
            return self.auto_upgrade
        return self.database_url.startswith("sqlite")

    @property
    def storage_url(self) -> str:
        return self.storage or f"file://{(self.data_dir / 'storage').resolve()}"

    @property
    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    @property
    def served_regions(self) -> tuple[str, ...]:
        """The regions requests may be signed for: the default `region` first."""
        extra = [r.strip() for r in self.regions_served.split(",") if r.strip()]
        return tuple(dict.fromkeys([self.region, *extra]))

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "admin-credentials"


_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def _coerce(name: str, kind: Any, value: Any) -> Any:
    kind_str = str(kind)
    if value is None:
        return None
    if name == "webhooks":
        return _webhooks(value)
    if name == "regions_served" and isinstance(value, list):
        return ",".join(str(each) for each in value)
    try:
        if "bool" in kind_str:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in _BOOL_TRUE:
                return True
            if text in _BOOL_FALSE:
                return False
            raise ValueError
        if "int" in kind_str:
            return int(value)
        if "Path" in kind_str:
            return Path(value) if str(value) else None
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"setting {name!r}: cannot use {value!r}") from None


def _regions(data: Any, where: str) -> tuple[RegionEndpoint, ...]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: regions must be tables like [regions.eu-west-1]")
    regions = []
    for name, table in data.items():
        if not isinstance(table, dict) or not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d", name):
            raise ConfigError(f"{where}: [regions.{name}] is not a region table")
        missing = [
            k for k in ("endpoint", "access_key_id", "secret_access_key") if not table.get(k)
        ]
        if missing:
            raise ConfigError(f"{where}: [regions.{name}] needs {', '.join(missing)}")
        endpoint = str(table["endpoint"])
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: [regions.{name}] endpoint must be an http(s) URL")
        unknown = set(table) - {"endpoint", "access_key_id", "secret_access_key"}
        if unknown:
            raise ConfigError(f"{where}: [regions.{name}] has unknown keys {sorted(unknown)}")
        regions.append(
            RegionEndpoint(
                name, endpoint, str(table["access_key_id"]), str(table["secret_access_key"])
            )
        )
    return tuple(regions)


def load_settings(
    config_file: Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Build settings from all sources and validate them."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    kinds = {f.name: f.type for f in fields(Settings)}
    config_file = config_file or (
        Path(environ["CARGOBAY_CONFIG"]) if environ.get("CARGOBAY_CONFIG") else None
    )
    if config_file is not None:
        try:
            data = tomllib.loads(Path(config_file).read_text())
        except OSError as exc:
            raise ConfigError(f"config file {config_file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from None
        if "regions" in data:
            values["regions"] = _regions(data.pop("regions"), f"config file {config_file}")
        for key, value in data.items():
            name = key.replace("-", "_")
            if name not in kinds:
                raise ConfigError(f"config file {config_file}: unknown setting {key!r}")
            values[name] = _coerce(name, kinds[name], value)
    for name, kind in kinds.items():
        env_value = environ.get(f"CARGOBAY_{name.upper()}")
        if env_value is not None and name == "regions":
            try:
                values[name] = _regions(json.loads(env_value), "CARGOBAY_REGIONS")
            except ValueError as exc:
                raise ConfigError(f"CARGOBAY_REGIONS is not a JSON object: {exc}") from None
        elif env_value is not None:
            values[name] = _coerce(name, kind, env_value)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _coerce(name, kinds[name], value)
    settings = replace(Settings(), **values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    if not 0 <= settings.port <= 65535:
        raise ConfigError(f"port {settings.port} is out of range")
    if settings.workers < 0 or settings.workers > 256:
        raise ConfigError(f"workers must be between 0 and 256, not {settings.workers}")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("tls_cert and tls_key must be given together")
    for path in (settings.tls_cert, settings.tls_key):
        if path is not None and not path.is_file():
            raise ConfigError(f"TLS file {path} does not exist")
    if not re.fullmatch(r"[0-9]{12}", settings.account_id):
        raise ConfigError(f"account_id must be 12 digits, not {settings.account_id!r}")
    if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", settings.region):
        raise ConfigError(f"region {settings.region!r} is not a region name like us-east-1")
    for served in settings.served_regions:
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", served):
            raise ConfigError(f"regions_served: {served!r} is not a region name like eu-west-1")
    if bool(settings.admin_access_key_id) != bool(settings.admin_secret_access_key):
        raise ConfigError(
            "CARGOBAY_ADMIN_ACCESS_KEY_ID and CARGOBAY_ADMIN_SECRET_ACCESS_KEY go together"
        )
    if settings.admin_access_key_id and not re.fullmatch(
        r"[A-Z0-9]{16,128}", settings.admin_access_key_id
    ):
        raise ConfigError("admin access key id must be 16-128 upper-case letters and digits")
    if settings.admin_secret_access_key and len(settings.admin_secret_access_key) < 16:
        raise ConfigError("admin secret access key must be at least 16 characters")
    try:
        for part in settings.trusted_proxies.split(","):
            if part.strip():
                ipaddress.ip_network(part.strip(), strict=False)
    except ValueError as exc:
        raise ConfigError(f"trusted_proxies: {exc}") from None
    for name in (
        "header_timeout_seconds",
        "body_idle_timeout_seconds",
        "keepalive_timeout_seconds",
    ):
        if not 1 <= getattr(settings, name) <= 86400:
            raise ConfigError(f"{name} must be between 1 and 86400, not {getattr(settings, name)}")
    if settings.max_connections_per_ip < 0:
        raise ConfigError("max_connections_per_ip must be 0 (no limit) or more")
    if not 1 <= settings.task_backoff_seconds <= settings.task_max_backoff_seconds:
        raise ConfigError(
            "task_backoff_seconds must be at least 1 and at most task_max_backoff_seconds"
        )
    if settings.pull_through_recheck_seconds < 0:
        raise ConfigError("pull_through_recheck_seconds must not be negative")
    if settings.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level {settings.log_level!r} is not debug/info/warning/error")
    if settings.storage:
        from cargobay.storage.backends import check_url

        try:
            check_url(settings.storage)
        except ValueError as exc:
            raise ConfigError(f"storage: {exc}") from None
    elif settings.storage and not settings.storage.startswith("file://"):
        raise ConfigError(f"storage {settings.storage!r}: use a file:// or s3:// URL")
    _validate_events(settings)
    if settings.database and not settings.database.startswith(("sqlite", "postgresql")):
        raise ConfigError(f"database {settings.database!r}: use a sqlite:// or postgresql:// URL")


def _validate_events(settings: Settings) -> None:
    from cargobay.events.pattern import PatternError, compile_pattern

    for hook in settings.webhooks:
        if not re.match(r"https?://[^/\s]+", hook.url):
            raise ConfigError(f"webhooks: {hook.url!r} is not an http(s) URL")
        if len(hook.secret) < 16:
            raise ConfigError(f"webhooks: the secret for {hook.url} needs at least 16 characters")
        if hook.account_id is not None and not re.fullmatch(r"\d{12}", str(hook.account_id)):
            raise ConfigError(f"webhooks: account_id for {hook.url} must be 12 digits")
        if hook.event_pattern:
            try:
                compile_pattern(hook.event_pattern)
            except PatternError as exc:
                raise ConfigError(f"webhooks: {hook.url}: {exc}") from None
    for name in ("webhook_retry_seconds", "webhook_backoff_seconds", "webhook_poll_seconds"):
        if getattr(settings, name) < 1:
            raise ConfigError(f"{name} must be at least 1")
    if settings.audit_retention_days < 1 or settings.event_retention_days < 1:
        raise ConfigError("audit_retention_days and event_retention_days must be at least 1")
    if settings.audit_flush_ms < 0:
        raise ConfigError("audit_flush_ms cannot be negative")
