"""The ``Destination`` contract: an S3-compatible bucket seen through the few calls we need.

Every implementation translates its own failures into ``DestinationTransientError`` (retry
later) or ``DestinationPermanentError`` (the developer must fix something; the message says
what) -- callers never see a botocore exception.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Destination", "ObjectInfo", "Upload"]


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    metadata: dict[str, str]


@runtime_checkable
class Upload(Protocol):
    """A streaming object write: small objects go up in one PUT, large ones as multipart.

    Memory is bounded by the multipart chunk size, whatever the object's size.
    """

    def write(self, data: bytes) -> None: ...

    def complete(self) -> None:
        """Make the object visible; before this nothing is visible under the key."""
        ...

    def abort(self) -> None:
        """Discard what was written (abort the multipart upload); safe to call twice."""
        ...


@runtime_checkable
class Destination(Protocol):
    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        if_none_match: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Write a whole object. With ``if_none_match`` the write fails with
        ``ObjectExistsError`` when the key already exists (``If-None-Match: *``)."""
        ...

    def open_upload(self, key: str, *, metadata: dict[str, str] | None = None) -> Upload: ...

    def get_object(self, key: str) -> bytes:
        """Read a whole object; ``NotFoundError`` when absent."""
        ...

    def head_object(self, key: str) -> ObjectInfo | None:
        """Size and user metadata, or ``None`` when the key does not exist."""
        ...

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, in key order (metadata left empty)."""
        ...

    def delete_object(self, key: str) -> None: ...

    def probe(self) -> None:
        """Connection test: write, read back and delete a small probe object.

        Raises the destination error that tells the developer what to fix.
        """
        ...
