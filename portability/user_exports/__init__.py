""" "Download your data": a user's own export of any categories, as ZIP volumes in the
platform's export bucket, with time-limited download links.

- ``lifecycle``: the table's guarded transitions (request with its guards, claim, cancel,
  delete, expire) on a caller's session.
- ``run_user_export``: the worker's side, on the export engine's snapshot read.
- ``user_export_housekeeping``: publish queued exports and expire old archives (beat, loop).
- ``download_links``: fresh presigned URLs for a ready export.
"""

from portability.db.user_export_models import ExportFormat, ExportStatus, RequestedBy, UserExport
from portability.user_exports._bucket import DownloadLink, ExportBucket, open_export_bucket
from portability.user_exports.housekeeping import (
    EnqueueExports,
    discard_archive,
    user_export_housekeeping,
)
from portability.user_exports.links import download_links

__all__ = [
    "DownloadLink",
    "EnqueueExports",
    "ExportBucket",
    "ExportFormat",
    "ExportStatus",
    "RequestedBy",
    "UserExport",
    "discard_archive",
    "download_links",
    "open_export_bucket",
    "user_export_housekeeping",
]
