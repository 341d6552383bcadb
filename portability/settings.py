"""The one typed settings object, read from ``PORTABILITY_*`` environment variables.

Every value has an embedded default that needs no server: a SQLite file and a filesystem
broker under ``PORTABILITY_DATA_DIR`` (default ``./.portability``). Settings are built once at an
edge (CLI, Celery app, tests) and passed down; nothing reads the environment anywhere else.

DSNs and keys are ``SecretStr``: they print as ``**********`` in every ``repr``, log line and
dump, and their value is taken (``resolved_*``) only where a connection is made.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from portability.categories import EEA_COUNTRIES
from portability.errors import ConfigurationError
from portability.keyfiles import read_or_create_key_file
from portability.netpolicy import EndpointPolicy

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Configuration for every process: API, workers, scheduler, CLI."""

    # hide_input_in_errors: a malformed setting's error must not echo a DSN or a key.
    model_config = SettingsConfigDict(
        env_prefix="PORTABILITY_", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(default=Path(".portability"), description="Folder for embedded state.")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///{data_dir}/portability.db"
    )
    broker_url: SecretStr | None = Field(
        default=None, description="Celery broker; default a filesystem queue under data_dir."
    )
    encryption_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys sealing stored secrets, newest first: the "
        "first seals, all open (rotation). Required unless on the embedded SQLite default.",
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="One Fernet key (the older setting); taken as the oldest of the keys.",
    )
    pseudonym_key: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Secret behind every app's user pseudonyms (HMAC-SHA256 key, 32+ "
        "characters). Required with a database_url; never change it: every pseudonym would "
        "change. The embedded default keeps one in data_dir/pseudonym.key.",
    )
    allow_http_endpoints: bool = Field(
        default=False, description="Allow http:// destination endpoints (local and test only)."
    )
    allow_private_endpoints: bool = Field(
        default=False,
        description="Allow loopback and private endpoint addresses (local dev, tests, demo).",
    )
    manifest_signing_keys: SecretStr | None = Field(
        default=None,
        description="Ed25519 keys that sign manifests, newest first: 'KEY_ID:BASE64,...' "
        "(portability.signing); required unless the database is the embedded SQLite, which "
        "falls back to a key file under data_dir.",
    )
    eligible_countries: frozenset[str] = Field(
        default=EEA_COUNTRIES, description="ISO countries whose users may grant (comma-separated)."
    )

    # Consent pages (portability.web).
    web_identity_key: SecretStr | None = Field(
        default=None,
        description="Key verifying the platform's signed identity assertions: the shared "
        "secret (HS256) or the Ed25519 public key in PEM (EdDSA).",
    )
    web_identity_algorithm: str = Field(
        default="HS256", description="HS256 | EdDSA: the only algorithm assertions may use."
    )
    web_identity_audience: str = Field(
        default="portability-consent", description="The 'aud' every assertion must carry."
    )
    web_identity_issuer: str | None = Field(
        default=None, description="The 'iss' every assertion must carry, when set."
    )
    web_session_key: SecretStr | None = Field(
        default=None,
        min_length=32,
        description="Secret signing the consent pages' session cookies (32+ characters). "
        "Required with a database_url; the embedded default keeps one in data_dir.",
    )
    web_session_max_age_seconds: int = Field(
        default=3600, ge=60, description="How long a signed-in page session lasts."
    )
    web_dev_login: bool = Field(
        default=False,
        description="Demo and tests only: a 'sign in as any user' page. Every page says "
        "when it is on. Never in production.",
    )

    # S3 defaults applied to destinations that do not say otherwise.
    s3_region: str = "us-east-1"
    s3_addressing_style: str = "path"
    s3_checksum_mode: str = Field(
        default="when_required",
        description="botocore checksum mode; 'when_supported' breaks some S3-compatible servers.",
    )
    s3_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Attempts per S3 request, the first included.",
    )
    s3_connect_timeout: float = 5.0
    s3_read_timeout: float = 60.0
    # S3's smallest part: one chunk per category is held in memory while it uploads.
    s3_multipart_chunk_mib: int = Field(default=5, ge=5, description="Multipart chunk size.")

    # Export engine.
    # 10,000 records (~2.5 MB of JSON) per batch: as fast as 20,000 was, and with 5 MiB chunks
    # a four-category export of 1M records peaks about 50 MB lower (bench/export.py).
    export_batch_size: int = Field(
        default=10_000, ge=1, description="Changes per batch; consent is re-read before each."
    )
    export_part_max_records: int = Field(
        default=250_000, ge=1, description="Records per JSONL part object."
    )
    export_compression: str = Field(default="gzip", description="gzip | zstd | none")
    export_category_concurrency: int = Field(
        default=4, ge=1, description="Categories of one run exported at the same time."
    )
    lease_seconds: int = Field(
        default=30,
        ge=1,
        description="Run and stream lease, renewed by a heartbeat every third of it; a dead "
        "worker's run is taken over once it lapses.",
    )

    # Change feed retention.
    feed_retention_days: int = Field(
        default=30,
        ge=1,
        description="Feed rows older than this are deleted; a stream that had not delivered "
        "them replays in full.",
    )
    feed_retention_interval_seconds: float = Field(
        default=3600.0, gt=0, description="How often the retention task runs (beat, scheduler)."
    )

    # Runs and retries.
    run_max_attempts: int = Field(default=5, ge=1)
    retry_backoff_base: float = Field(default=2.0, gt=0, description="Seconds; doubles per try.")
    retry_backoff_max: float = Field(default=300.0, gt=0)
    task_time_limit: int = Field(default=6 * 3600, description="Hard limit for one export task.")
    visibility_timeout: int = Field(
        default=8 * 3600, description="Redis broker redelivery; longer than the longest run."
    )
    broker_restore_interval: float = Field(
        default=30.0,
        gt=0,
        description="How often a Redis-broker worker sweeps for unacknowledged messages whose "
        "visibility timeout passed (a dead worker's), to deliver them again.",
    )

    # Scheduler.
    scheduler_tick_seconds: float = 5.0
    scheduler_batch_size: int = Field(default=1000, ge=1)
    scheduler_min_interval_minutes: int = Field(default=15, ge=1)
    scheduler_max_jitter_seconds: int = Field(default=900, ge=0)
    reconcile_after_seconds: int = Field(
        default=300, ge=1, description="Re-enqueue runs left queued longer than this."
    )

    # Developer HTTP API (``portability api``).
    api_host: str = Field(default="127.0.0.1", description="Interface the API listens on.")
    api_port: int = Field(default=8000, ge=0, le=65535)
    api_service_token: SecretStr | None = Field(
        default=None,
        description="Bearer token of the platform's internal endpoints; unset turns them off.",
    )
    api_key_overlap_seconds: int = Field(
        default=24 * 3600, ge=0, description="How long a rotated-out API key keeps working."
    )
    api_key_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long a process trusts a verified key of an approved app without "
        "re-reading it: a revocation or suspension elsewhere takes at most this long.",
    )
    api_rate_limit: int = Field(default=1200, ge=1, description="Requests per app per window.")
    api_rate_limit_window_seconds: int = Field(default=60, ge=1)
    api_rate_limit_url: str | None = Field(
        default=None,
        description="Redis URL of the shared rate-limit counters; default the broker when it "
        "is Redis, else counters in the API process.",
    )
    api_db_pool_size: int = Field(
        default=8, ge=1, description="Database connections of one API process."
    )

    # Operations: logs, metrics, health, queues.
    log_format: str = Field(
        default="auto", description="json | text | auto (text on a terminal, else JSON lines)."
    )
    log_level: str = Field(default="INFO", description="Root log level of our processes.")
    worker_metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of a worker's /metrics (its main process serves every pool "
        "process's series from PROMETHEUS_MULTIPROC_DIR); unset: no server.",
    )
    scheduler_metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Port of beat's or the scheduler's /metrics."
    )
    metrics_addr: str = Field(default="0.0.0.0", description="Address /metrics servers bind.")  # noqa: S104
    health_dir: Path | None = Field(
        default=None, description="Folder of heartbeat files; default {data_dir}/health."
    )
    heartbeat_seconds: float = Field(
        default=10.0, gt=0, description="How often a worker touches its heartbeat file."
    )
    export_queues: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Export queues; a run goes to the one its app id hashes to, and workers "
        "take from every queue in turn, so one app's burst cannot hold back the others.",
    )
    run_history_days: int | None = Field(
        default=None,
        ge=1,
        description="Finished runs (and their category rows) older than this are deleted by "
        "the retention step of beat or the scheduler loop; unset: kept for ever.",
    )
    run_history_batch: int = Field(
        default=5000, ge=1, description="Runs deleted per transaction by history retention."
    )
    worker_max_memory_per_child_mib: int = Field(
        default=1024,
        ge=64,
        description="A pool process that grew past this is replaced after its current task.",
    )

    # Events and webhooks (portability.events, portability.webhooks).
    events_dispatch_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often the dispatcher (beat, scheduler) fans new events out to their "
        "endpoints and re-sends deliveries the broker lost.",
    )
    events_dispatch_batch_size: int = Field(default=1000, ge=1)
    events_destination_failing_after: int = Field(
        default=3,
        ge=1,
        description="Consecutive runs failing permanently on one destination before "
        "destination.failing is sent.",
    )
    events_retention_days: int = Field(
        default=30,
        ge=1,
        description="Events and ended deliveries older than this are deleted (with the feed's "
        "retention task); a delivery still owed is kept.",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Connect and read timeout of one webhook attempt."
    )
    webhook_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="Wait after a delivery's first failed attempt; doubles."
    )
    webhook_retry_max_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="Longest wait between two attempts."
    )
    webhook_retry_jitter: float = Field(
        default=0.2, ge=0, le=1, description="Each wait is lengthened by up to this fraction."
    )
    webhook_retry_window_seconds: float = Field(
        default=72 * 3600.0,
        gt=0,
        description="How long a delivery is retried before it is marked failed; an endpoint "
        "failing for this whole window is disabled.",
    )
    webhook_resend_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A due delivery whose message has not been acted on for this long is "
        "published again (the broker lost it, or its worker died).",
    )
    webhook_secret_overlap_seconds: float = Field(
        default=24 * 3600.0,
        ge=0,
        description="After a secret rotation, the old secret also signs for this long.",
    )

    # "Download your data" (portability.user_exports): the platform's own export bucket.
    user_export_endpoint_url: str | None = Field(
        default=None, description="S3 endpoint of the export bucket; unset: AWS S3."
    )
    user_export_bucket: str | None = Field(
        default=None, description="Bucket holding users' own archives; unset: exports are off."
    )
    user_export_region: str = Field(default="us-east-1", description="The export bucket's region.")
    user_export_access_key_id: SecretStr | None = Field(default=None)
    user_export_secret_access_key: SecretStr | None = Field(default=None)
    user_export_prefix: str = Field(default="user-exports", description="Key prefix of archives.")
    user_export_url_lifetime_seconds: int = Field(
        default=4 * 24 * 3600,
        ge=60,
        le=7 * 24 * 3600,
        description="Lifetime of a presigned download URL (S3 allows 7 days at most).",
    )
    user_export_retention_days: float = Field(
        default=7.0, gt=0, description="A ready archive is deleted (and marked expired) after."
    )
    user_export_volume_bytes: int = Field(
        default=2 * 1024**3,
        ge=1,
        description="An archive past this size continues in a new numbered volume.",
    )
    user_export_rate_limit: int = Field(
        default=5, ge=1, description="Exports one user may request per rate window."
    )
    user_export_rate_window_seconds: int = Field(default=24 * 3600, ge=1)
    user_export_housekeeping_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often beat or the scheduler loop publishes queued exports and "
        "deletes expired archives.",
    )

    @field_validator("eligible_countries", mode="before")
    @classmethod
    def _parse_countries(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(c.strip().upper() for c in value.split(",") if c.strip())
        return value

    @field_validator("web_identity_algorithm")
    @classmethod
    def _check_identity_algorithm(cls, value: str) -> str:
        if value not in {"HS256", "EdDSA"}:
            raise ValueError(f"web_identity_algorithm must be HS256 or EdDSA, not {value!r}")
        return value

    @field_validator("export_compression")
    @classmethod
    def _check_compression(cls, value: str) -> str:
        if value not in {"gzip", "zstd", "none"}:
            raise ValueError(f"export_compression must be gzip, zstd or none, not {value!r}")
        return value

    @property
    def resolved_database_url(self) -> str:
        """The database URL, password included: pass it to the driver, never print it."""
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'portability.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        """The broker URL, password included: pass it to Celery, never print it."""
        if self.broker_url is not None and self.broker_url.get_secret_value():
            return self.broker_url.get_secret_value()
        return "filesystem://"

    @property
    def is_embedded_database(self) -> bool:
        """True on the embedded SQLite default (no ``PORTABILITY_DATABASE_URL``)."""
        return self.database_url is None or not self.database_url.get_secret_value()

    @property
    def endpoint_policy(self) -> EndpointPolicy:
        return EndpointPolicy(
            allow_http=self.allow_http_endpoints, allow_private=self.allow_private_endpoints
        )

    @property
    def resolved_rate_limit_url(self) -> str | None:
        if self.api_rate_limit_url:
            return self.api_rate_limit_url
        broker = self.resolved_broker_url
        return broker if broker.startswith(("redis://", "rediss://")) else None

    @property
    def resolved_health_dir(self) -> Path:
        return (self.health_dir or self.data_dir / "health").resolve()

    @property
    def broker_folder(self) -> Path:
        """Where the embedded filesystem broker keeps its messages."""
        return (self.data_dir / "broker").resolve()

    def resolved_encryption_keys(self) -> list[bytes]:
        """The Fernet keys, newest first: ``encryption_keys``, then ``encryption_key``.

        With neither set, the embedded SQLite default uses a key file under ``data_dir``
        (created once, atomically, mode 0600). Any other database is shared by several hosts,
        which must all hold the same keys, so a missing key is an error there.
        """
        keys: list[bytes] = []
        for secret in (self.encryption_keys, self.encryption_key):
            if secret is not None:
                for key in secret.get_secret_value().split(","):
                    if key.strip() and key.strip().encode() not in keys:
                        keys.append(key.strip().encode())
        if keys:
            return keys
        if not self.is_embedded_database:
            raise ConfigurationError(
                "PORTABILITY_ENCRYPTION_KEYS is not set: every host sharing this database needs "
                "the same key; create one with `portability keys generate`"
            )
        return [read_or_create_key_file(self.data_dir / "encryption.key", _fernet_key)]

    def resolved_pseudonym_key(self) -> bytes:
        """The key of ``portability.pseudonyms``: from settings, else (only with the embedded
        SQLite default) a key file created once under ``data_dir``.

        A server deployment must set it: a key made up by each machine would give one user
        different pseudonyms depending on which worker exported them.
        """
        if self.pseudonym_key is not None:
            return self.pseudonym_key.get_secret_value().encode()
        if not self.is_embedded_database:
            raise ConfigurationError(
                "PORTABILITY_PSEUDONYM_KEY is not set: every process that exports needs the "
                "same secret of 32+ characters (e.g. python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'), kept for ever"
            )
        return read_or_create_key_file(self.data_dir / "pseudonym.key", _pseudonym_secret)

    def resolved_web_session_key(self) -> bytes:
        """The key signing session cookies: from settings, else (embedded SQLite default only)
        a key file under ``data_dir``; every host serving the pages needs the same one."""
        if self.web_session_key is not None:
            return self.web_session_key.get_secret_value().encode()
        if not self.is_embedded_database:
            raise ConfigurationError(
                "PORTABILITY_WEB_SESSION_KEY is not set: every host serving the consent pages "
                "needs the same secret of 32+ characters"
            )
        return read_or_create_key_file(self.data_dir / "web-session.key", _pseudonym_secret)


def _fernet_key() -> bytes:
    from cryptography.fernet import Fernet

    return Fernet.generate_key()


def _pseudonym_secret() -> bytes:
    return secrets.token_urlsafe(32).encode()
