"""``S3Upload``: a streaming write that buffers one chunk, then continues as a multipart upload.

This module holds the upload's life cycle -- when a write switches to multipart, that any
failure aborts it, that a finished upload refuses more use. The S3 calls themselves, and the
translation of their errors, stay in ``S3Destination``, which ``S3Upload`` sees only through
the ``MultipartCalls`` protocol.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, Protocol

from portability.errors import DestinationError

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

__all__ = ["MultipartCalls", "S3Upload"]

log = logging.getLogger(__name__)


class MultipartCalls(Protocol):
    """The S3 requests an upload makes, errors already translated (``S3Destination``)."""

    def put_object(self, key: str, body: bytes, *, metadata: dict[str, str] | None = None) -> None:
        """One whole object, for an upload that ends within its first chunk."""

    def create_multipart(self, key: str, metadata: dict[str, str]) -> str:
        """Start a multipart upload; its id."""

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray) -> str:
        """Send part ``number`` (from 1); its ETag."""

    def complete_multipart(
        self, key: str, upload_id: str, parts: list[CompletedPartTypeDef]
    ) -> None: ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Abort; an upload already aborted or completed is not an error."""


class S3Upload:
    """A streaming write: buffers up to one chunk, then continues as a multipart upload.

    An object that ends before the first chunk fills goes up as one ``PutObject``. Any
    failure aborts the multipart upload (best effort: an incomplete upload the abort could not
    reach is left to the bucket's lifecycle rule) and leaves this upload unusable.
    """

    def __init__(
        self,
        calls: MultipartCalls,
        key: str,
        metadata: dict[str, str] | None,
        chunk_bytes: int,
    ) -> None:
        self.key = key
        self._calls = calls
        self._metadata = dict(metadata or {})
        self._chunk = chunk_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._state: Literal["open", "completed", "aborted"] = "open"

    def __repr__(self) -> str:
        return f"S3Upload(key={self.key!r}, parts={len(self._parts)}, state={self._state})"

    @property
    def upload_id(self) -> str | None:
        """The multipart upload's id, once the first chunk has filled."""
        return self._upload_id

    def write(self, data: bytes) -> None:
        self._check_open()
        rest = memoryview(data)
        while len(self._buffer) + len(rest) >= self._chunk:
            # Fill the buffer to exactly one chunk and hand it over as it is: each byte is
            # copied once, and a write of any size never holds more than one chunk here.
            room = self._chunk - len(self._buffer)
            self._buffer += rest[:room]
            rest = rest[room:]
            part, self._buffer = self._buffer, bytearray()
            self._guarded(self._send_part, part)
        self._buffer += rest

    def complete(self) -> None:
        self._check_open()
        if self._upload_id is None:
            self._guarded(self._put_whole)
        else:
            if self._buffer:
                part, self._buffer = self._buffer, bytearray()
                self._guarded(self._send_part, part)
            self._guarded(self._finish)
        self._state = "completed"

    def abort(self) -> None:
        if self._state == "completed":
            return
        self._state = "aborted"
        self._buffer = bytearray()
        if self._upload_id is not None:
            self._calls.abort_multipart(self.key, self._upload_id)
            self._upload_id = None

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"upload of {self.key!r} is {self._state}; open a new one")

    def _guarded(self, step: Callable[..., None], *args: bytearray) -> None:
        try:
            step(*args)
        except BaseException:
            try:
                self.abort()
            except DestinationError as exc:
                log.warning("could not abort the multipart upload of %r: %s", self.key, exc)
            raise

    def _put_whole(self) -> None:
        self._calls.put_object(self.key, bytes(self._buffer), metadata=self._metadata)

    def _send_part(self, part: bytearray) -> None:
        if self._upload_id is None:
            self._upload_id = self._calls.create_multipart(self.key, self._metadata)
        number = len(self._parts) + 1
        etag = self._calls.upload_part(self.key, self._upload_id, number, part)
        self._parts.append({"PartNumber": number, "ETag": etag})

    def _finish(self) -> None:
        assert self._upload_id is not None
        self._calls.complete_multipart(self.key, self._upload_id, self._parts)
