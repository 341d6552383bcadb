"""Fresh download links for a ready export: one presigned GET per volume.

A link lives ``user_export_url_lifetime_seconds`` (default 4 days), never past the archive's
own deletion: a link that outlived its object would only answer 404.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from portability.db.user_export_models import ExportStatus, UserExport
from portability.errors import ConflictError
from portability.settings import Settings
from portability.user_exports._bucket import DownloadLink, ExportBucket

__all__ = ["download_links"]


def download_links(
    bucket: ExportBucket, row: UserExport, settings: Settings, *, now: datetime
) -> list[DownloadLink]:
    """``ConflictError`` unless the export is ready (its archive exists)."""
    if row.status != ExportStatus.READY.value or not row.object_keys:
        raise ConflictError(
            f"export {row.id} is {row.status}: download links exist only while it is ready"
        )
    until = now + timedelta(seconds=settings.user_export_url_lifetime_seconds)
    if row.expires_at is not None and row.expires_at < until:
        until = row.expires_at
    keys = row.object_keys
    return [
        bucket.link(row.id, n, len(keys), key, now=now, until=until)
        for n, key in enumerate(keys, start=1)
    ]
