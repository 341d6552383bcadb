"""The one typed settings object, read from ``PORTABILITY_*`` environment variables.

Every value has an embedded default that needs no server: a SQLite file and a filesystem
broker under ``PORTABILITY_DATA_DIR`` (default ``./.portability``). Settings are built once at an
edge (CLI, Celery app, tests) and passed down; nothing reads the environment anywhere else.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from portability.categories import EEA_COUNTRIES

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Configuration for every process: API, workers, scheduler, CLI."""

    model_config = SettingsConfigDict(env_prefix="PORTABILITY_", extra="ignore")

    data_dir: Path = Field(default=Path(".portability"), description="Folder for embedded state.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///{data_dir}/portability.db"
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker; default a filesystem queue under data_dir."
    )
    encryption_key: SecretStr | None = Field(
        default=None,
        description="Fernet key for destination credentials; default a key file under data_dir.",
    )
    eligible_countries: frozenset[str] = Field(
        default=EEA_COUNTRIES, description="ISO countries whose users may grant (comma-separated)."
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
        default=120, ge=1, description="Run and category lease; renewed every batch."
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
    api_allow_private_endpoints: bool = Field(
        default=False,
        description="Accept destination endpoints on loopback or private networks (tests, "
        "on-premises buckets); off, such an endpoint is refused at registration.",
    )
    api_db_pool_size: int = Field(
        default=8, ge=1, description="Database connections of one API process."
    )

    @field_validator("eligible_countries", mode="before")
    @classmethod
    def _parse_countries(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(c.strip().upper() for c in value.split(",") if c.strip())
        return value

    @field_validator("export_compression")
    @classmethod
    def _check_compression(cls, value: str) -> str:
        if value not in {"gzip", "zstd", "none"}:
            raise ValueError(f"export_compression must be gzip, zstd or none, not {value!r}")
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'portability.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def resolved_rate_limit_url(self) -> str | None:
        if self.api_rate_limit_url:
            return self.api_rate_limit_url
        broker = self.resolved_broker_url
        return broker if broker.startswith(("redis://", "rediss://")) else None

    @property
    def broker_folder(self) -> Path:
        """Where the embedded filesystem broker keeps its messages."""
        return (self.data_dir / "broker").resolve()

    def resolved_encryption_key(self) -> bytes:
        """The Fernet key: from settings, else a key file created once under ``data_dir``."""
        if self.encryption_key is not None:
            return self.encryption_key.get_secret_value().encode()
        from cryptography.fernet import Fernet

        key_file = self.data_dir / "encryption.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_bytes(Fernet.generate_key())
            key_file.chmod(0o600)
        return key_file.read_bytes().strip()
