"""``S3Destination``: any S3-compatible bucket (AWS, SeaweedFS, MinIO, Ceph...) through boto3.

boto3 retries each request itself (standard mode, ``max_attempts``); whatever still fails is
translated once, in ``_seam``, by the table in ``_errors``. Writes larger than one multipart
chunk stream as a multipart upload (``S3Upload``, in ``_s3_upload``), so memory stays near one
chunk whatever the object's size. Credentials live only in the ``S3Config`` in memory and in
the boto3 client: they are kept out of every ``repr``, log line and error message.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import botocore.session
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from portability.destinations._errors import (
    TRANSLATED,
    Where,
    error_code,
    http_status,
    is_missing,
    translate,
)
from portability.destinations._s3_guard import guard_client, refusal
from portability.destinations._s3_upload import S3Upload
from portability.destinations.base import ObjectInfo, Upload
from portability.errors import (
    DestinationError,
    DestinationPermanentError,
    EndpointRefusedError,
    NotFoundError,
    ObjectExistsError,
    ValidationError,
)
from portability.netpolicy import check_url_shape

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

    from portability.crypto import CredentialBox
    from portability.db.models import Destination as DestinationRow
    from portability.netpolicy import EndpointPolicy
    from portability.settings import Settings

__all__ = ["MIN_PART_BYTES", "PROBE_PREFIX", "S3Config", "S3Destination", "S3Upload"]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_BYTES = 5 * MiB  # S3's smallest multipart part (every part but the last)
PROBE_PREFIX = ".portability-probe/"
_CHECKSUM_MODES = frozenset({"when_required", "when_supported"})
_ADDRESSING_STYLES = frozenset({"path", "virtual", "auto"})
_ChecksumMode = Literal["when_supported", "when_required"]
_Addressing = Literal["auto", "virtual", "path"]


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach one bucket. The keys never appear in ``repr``/``str``.

    ``checksum_mode`` is botocore's request/response checksum setting: ``when_required``
    (our default) because botocore's newer ``when_supported`` default sends CRC trailers
    that several S3-compatible servers reject. ``max_attempts`` counts every try of one
    request, the first included (boto3 standard retry mode); timeouts are in seconds.

    ``endpoint_policy`` is checked before every request and on every new connection
    (``_s3_guard``). The exporter always sets it (``from_row``: a developer's endpoint is
    untrusted); ``None`` -- no check -- is for the developer's own tools, such as the consumer.
    """

    bucket: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    endpoint_url: str | None = None
    region: str = "us-east-1"
    addressing_style: str = "path"
    server_side_encryption: str | None = None
    checksum_mode: str = "when_required"
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    multipart_chunk_bytes: int = MIN_PART_BYTES
    endpoint_policy: EndpointPolicy | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValidationError("an S3 destination needs a bucket name")
        if not self.access_key_id or not self.secret_access_key:
            raise ValidationError("an S3 destination needs an access key id and a secret key")
        if self.checksum_mode not in _CHECKSUM_MODES:
            raise ValidationError(
                f"checksum mode {self.checksum_mode!r} must be when_required or when_supported"
            )
        if self.addressing_style not in _ADDRESSING_STYLES:
            raise ValidationError(
                f"addressing style {self.addressing_style!r} must be path, virtual or auto"
            )
        if self.multipart_chunk_bytes < MIN_PART_BYTES:
            raise ValidationError(
                f"multipart chunk of {self.multipart_chunk_bytes} bytes is below S3's "
                f"minimum part size of {MIN_PART_BYTES} bytes (5 MiB)"
            )
        if self.max_attempts < 1 or self.connect_timeout <= 0 or self.read_timeout <= 0:
            raise ValidationError("max_attempts and both timeouts must be positive")

    @property
    def endpoint_label(self) -> str:
        """How messages name the server: its URL, or AWS and the region."""
        return self.endpoint_url or f"AWS S3 ({self.region})"


class S3Destination:
    """The ``Destination`` contract over one S3-compatible bucket; thread-safe.

    Keys are used as given: the destination's prefix is already part of every key the
    export engine builds (``portability.manifest``).
    """

    # Objects per ListObjectsV2 page; None is the server's default (1000). Tests lower it to
    # exercise pagination without writing a thousand objects.
    list_page_size: int | None = None

    def __init__(self, config: S3Config) -> None:
        self._config = config
        policy = config.endpoint_policy
        if policy is not None and config.endpoint_url is not None:
            try:
                policy.check_scheme(check_url_shape(config.endpoint_url).scheme)
            except EndpointRefusedError as exc:
                raise refusal(exc) from None
        self._client: S3Client = _make_client(config)
        if policy is not None:
            guard_client(self._client, policy)
        self._sse: dict[str, Any] = (
            {"ServerSideEncryption": config.server_side_encryption}
            if config.server_side_encryption
            else {}
        )

    @classmethod
    def from_row(
        cls,
        row: DestinationRow,
        box: CredentialBox,
        settings: Settings,
        *,
        endpoint_policy: EndpointPolicy | None = None,
    ) -> S3Destination:
        """Open a registered destination; its credentials are decrypted in memory only.

        Every connection is held to ``endpoint_policy`` (default ``settings.endpoint_policy``).
        """
        from portability.registry import destination_credentials

        credentials = destination_credentials(box, row)
        return cls(
            S3Config(
                bucket=row.bucket,
                access_key_id=credentials["access_key_id"],
                secret_access_key=credentials["secret_access_key"],
                endpoint_url=row.endpoint_url,
                region=row.region or settings.s3_region,
                addressing_style=row.addressing_style or settings.s3_addressing_style,
                server_side_encryption=row.server_side_encryption,
                checksum_mode=settings.s3_checksum_mode,
                max_attempts=settings.s3_max_attempts,
                connect_timeout=settings.s3_connect_timeout,
                read_timeout=settings.s3_read_timeout,
                multipart_chunk_bytes=settings.s3_multipart_chunk_mib * MiB,
                endpoint_policy=endpoint_policy or settings.endpoint_policy,
            )
        )

    @property
    def config(self) -> S3Config:
        return self._config

    def __repr__(self) -> str:
        return (
            f"S3Destination(bucket={self._config.bucket!r}, "
            f"endpoint={self._config.endpoint_label!r})"
        )

    @contextmanager
    def _seam(self, key: str | None = None) -> Iterator[None]:
        """Where boto3's exceptions become ``DestinationError``s (see ``_errors``)."""
        try:
            yield
        except TRANSLATED as exc:
            where = Where(self._config.bucket, self._config.endpoint_label, key)
            raise translate(exc, where) from exc

    def _name(self, key: str) -> str:
        return f"object {key!r} in bucket {self._config.bucket!r} at {self._config.endpoint_label}"

    # -- the Destination contract ------------------------------------------------------

    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        if_none_match: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """One PUT. With ``if_none_match`` (``If-None-Match: *``) an existing key raises
        ``ObjectExistsError`` -- possibly our own earlier attempt whose response was lost and
        which boto3 retried, so callers compare the stored object before calling it a clash."""
        extra: dict[str, Any] = dict(self._sse)
        if metadata:
            extra["Metadata"] = metadata
        if if_none_match:
            extra["IfNoneMatch"] = "*"
        with self._seam(key):
            try:
                self._client.put_object(Bucket=self._config.bucket, Key=key, Body=body, **extra)
            except ClientError as exc:
                if if_none_match and _is_precondition_failed(exc):
                    raise ObjectExistsError(f"{self._name(key)} already exists") from exc
                raise

    def open_upload(self, key: str, *, metadata: dict[str, str] | None = None) -> Upload:
        return S3Upload(self, key, metadata, self._config.multipart_chunk_bytes)

    def get_object(self, key: str) -> bytes:
        with self._seam(key):
            try:
                response = self._client.get_object(Bucket=self._config.bucket, Key=key)
            except ClientError as exc:
                if is_missing(exc):
                    raise NotFoundError(f"{self._name(key)} does not exist") from exc
                raise
            body = response["Body"]
            try:
                return body.read()
            finally:
                body.close()

    def head_object(self, key: str) -> ObjectInfo | None:
        """``None`` for a missing key. A HEAD answer has no body, so a missing bucket looks
        the same; ``probe()`` and every write name a missing bucket explicitly."""
        with self._seam(key):
            try:
                response = self._client.head_object(Bucket=self._config.bucket, Key=key)
            except ClientError as exc:
                if is_missing(exc):
                    return None
                raise
        return ObjectInfo(key, int(response["ContentLength"]), dict(response.get("Metadata", {})))

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._seam(prefix):
            pages = paginator.paginate(
                Bucket=self._config.bucket,
                Prefix=prefix,
                PaginationConfig={"PageSize": self.list_page_size} if self.list_page_size else {},
            )
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item["Size"]), {})

    def delete_object(self, key: str) -> None:
        with self._seam(key):
            self._client.delete_object(Bucket=self._config.bucket, Key=key)

    def probe(self) -> None:
        """Write, read back and delete ``.portability-probe/<uuid>``: the three rights an
        export needs, checked with the destination's own credentials."""
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        payload = b"portability probe " + key.encode() + b"\n"
        self.put_object(key, payload)
        try:
            self._read_back(key, payload)
        except BaseException:
            with suppress(DestinationError):  # the failure that matters is the one raised
                self.delete_object(key)
            raise
        self.delete_object(key)
        log.debug("probe of %r at %s succeeded", self._config.bucket, self._config.endpoint_label)

    def _read_back(self, key: str, payload: bytes) -> None:
        try:
            echoed = self.get_object(key)
        except NotFoundError as exc:
            raise DestinationPermanentError(
                f"{self._name(key)} was written but cannot be read back: check the endpoint URL "
                "and addressing style of the destination"
            ) from exc
        if echoed != payload:
            raise DestinationPermanentError(
                f"{self._name(key)} reads back {len(echoed)} bytes that differ from the "
                f"{len(payload)} written: the endpoint does not behave like S3"
            )

    def presigned_get(self, key: str, *, expires_in: int, filename: str | None = None) -> str:
        """A time-limited GET URL for ``key`` (signed locally: no request is made). With
        ``filename``, the download is offered under that name (``Content-Disposition``)."""
        params: dict[str, Any] = {"Bucket": self._config.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        with self._seam(key):
            return self._client.generate_presigned_url(
                "get_object", Params=params, ExpiresIn=expires_in
            )

    # -- multipart steps: the MultipartCalls that S3Upload drives ----------------------

    def create_multipart(self, key: str, metadata: dict[str, str]) -> str:
        extra: dict[str, Any] = dict(self._sse)
        if metadata:
            extra["Metadata"] = metadata
        with self._seam(key):
            response = self._client.create_multipart_upload(
                Bucket=self._config.bucket, Key=key, **extra
            )
        return response["UploadId"]

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray) -> str:
        with self._seam(key):
            response = self._client.upload_part(
                Bucket=self._config.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                # botocore takes a bytearray as it is (validate._validate_blob): no chunk copy.
                Body=cast(bytes, body),
            )
        return response["ETag"]

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[CompletedPartTypeDef]
    ) -> None:
        with self._seam(key):
            self._client.complete_multipart_upload(
                Bucket=self._config.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        with self._seam(key):
            try:
                self._client.abort_multipart_upload(
                    Bucket=self._config.bucket, Key=key, UploadId=upload_id
                )
            except ClientError as exc:
                if error_code(exc) != "NoSuchUpload":  # already aborted or completed
                    raise


def _is_precondition_failed(exc: ClientError) -> bool:
    return error_code(exc) == "PreconditionFailed" or http_status(exc) == 412


# One botocore session per process, made on first use, only to create clients: a fresh
# session re-reads botocore's service models (~0.2 s per destination opened); with a shared
# one a client costs ~15 ms. Client creation is serialised: sessions are not thread-safe,
# the clients they create are.
_session_lock = threading.Lock()
_session: botocore.session.Session | None = None


def _make_client(config: S3Config) -> S3Client:
    global _session
    botocore_config = BotoConfig(
        signature_version="s3v4",
        # total_max_attempts counts the first try; botocore's "max_attempts" key counts retries.
        retries={"mode": "standard", "total_max_attempts": config.max_attempts},
        s3={"addressing_style": cast(_Addressing, config.addressing_style)},
        request_checksum_calculation=cast(_ChecksumMode, config.checksum_mode),
        response_checksum_validation=cast(_ChecksumMode, config.checksum_mode),
        connect_timeout=config.connect_timeout,
        read_timeout=config.read_timeout,
        max_pool_connections=16,
        tcp_keepalive=True,
        user_agent_extra="portability",
    )
    with _session_lock:
        if _session is None:
            _session = botocore.session.get_session()
        client = _session.create_client(
            "s3",
            endpoint_url=config.endpoint_url,
            region_name=config.region,
            aws_access_key_id=config.access_key_id,
            aws_secret_access_key=config.secret_access_key,
            config=botocore_config,
        )
    return cast("S3Client", client)
