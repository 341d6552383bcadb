"""Opening the developer's own bucket, with the developer's own credentials.

Nothing here reads our settings or database: a developer can run the consumer with nothing
but their endpoint, bucket and keys.
"""

from __future__ import annotations

from portability.destinations.base import Destination

__all__ = ["open_bucket"]


def open_bucket(
    bucket: str,
    *,
    access_key_id: str,
    secret_access_key: str,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    addressing_style: str = "path",
) -> Destination:
    """An S3-compatible bucket seen through the ``Destination`` calls the consumer uses."""
    from portability.destinations.s3 import S3Config, S3Destination

    return S3Destination(
        S3Config(
            bucket=bucket,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            endpoint_url=endpoint_url,
            region=region,
            addressing_style=addressing_style,
        )
    )
