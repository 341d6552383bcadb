"""The platform's export bucket: where archives go, their keys and their download URLs.

The operator configures it (``PORTABILITY_USER_EXPORT_*``); a developer never chooses it, so
its endpoint is trusted like the rest of the configuration (no endpoint policy). Writes go
through the same ``S3Destination`` as every transfer: errors translated once, multipart
uploads with bounded memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portability.destinations.s3 import MiB, S3Config, S3Destination
from portability.errors import ConfigurationError
from portability.settings import Settings

__all__ = ["DownloadLink", "ExportBucket", "open_export_bucket"]


@dataclass(frozen=True, slots=True)
class DownloadLink:
    volume: int
    filename: str
    url: str
    expires_at: datetime


class ExportBucket:
    """Archive keys under ``prefix`` and presigned GETs, over one ``S3Destination``."""

    def __init__(self, destination: S3Destination, prefix: str) -> None:
        self.destination = destination
        self.prefix = prefix.strip("/")

    def key(self, export_id: int, volume: int) -> str:
        """Deterministic: a retried export rewrites the same keys."""
        return f"{self.prefix}/{export_id}/your-data-{volume}.zip"

    def folder(self, export_id: int) -> str:
        return f"{self.prefix}/{export_id}/"

    def link(
        self, export_id: int, volume: int, of: int, key: str, *, now: datetime, until: datetime
    ) -> DownloadLink:
        """A presigned GET of one volume, valid until ``until`` (at least a minute)."""
        seconds = max(60, int((until - now).total_seconds()))
        name = f"your-data-{export_id}.zip" if of == 1 else f"your-data-{export_id}-{volume}.zip"
        url = self.destination.presigned_get(key, expires_in=seconds, filename=name)
        return DownloadLink(volume, name, url, until)


def open_export_bucket(settings: Settings) -> ExportBucket:
    """The configured export bucket; ``ConfigurationError`` naming what to set otherwise."""
    key_id, secret = settings.user_export_access_key_id, settings.user_export_secret_access_key
    if not settings.user_export_bucket or key_id is None or secret is None:
        raise ConfigurationError(
            "downloads of users' data are not set up: set PORTABILITY_USER_EXPORT_BUCKET, "
            "PORTABILITY_USER_EXPORT_ACCESS_KEY_ID and PORTABILITY_USER_EXPORT_SECRET_ACCESS_KEY "
            "(and PORTABILITY_USER_EXPORT_ENDPOINT_URL for a server other than AWS S3)"
        )
    config = S3Config(
        bucket=settings.user_export_bucket,
        access_key_id=key_id.get_secret_value(),
        secret_access_key=secret.get_secret_value(),
        endpoint_url=settings.user_export_endpoint_url,
        region=settings.user_export_region,
        addressing_style=settings.s3_addressing_style,
        checksum_mode=settings.s3_checksum_mode,
        max_attempts=settings.s3_max_attempts,
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        multipart_chunk_bytes=settings.s3_multipart_chunk_mib * MiB,
    )
    return ExportBucket(S3Destination(config), settings.user_export_prefix)
