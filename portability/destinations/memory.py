"""``MemoryDestination``: an honest in-memory bucket for tests and demos.

Honest means it keeps the promises of the ``Destination`` contract the way S3 does, so a test
that passes here is not fooled: a conditional write refuses an existing key, an upload is
invisible until ``complete()``, an aborted one leaves nothing, listing is in key order (code
point order, which is S3's UTF-8 byte order) and user metadata keys come back lower-cased.

Fault injection lets engine tests script the destination's failures::

    destination.fail_next(2, DestinationTransientError("503 Slow Down"))   # next 2 writes fail
    destination.fail_next(1, "permanent", key_contains="/manifests/")      # the next manifest
    destination.fail_next(0, None)                                         # clear every fault

A "write" is ``put_object`` or ``Upload.complete()``: the two ways an object becomes visible.
Other operations can be targeted with ``on=("get", "head", "list", "delete")``.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from portability.destinations.base import ObjectInfo, Upload
from portability.errors import (
    DestinationPermanentError,
    DestinationTransientError,
    NotFoundError,
    ObjectExistsError,
)

__all__ = ["MemoryDestination", "MemoryUpload", "Operation"]

Operation = Literal["put", "get", "head", "list", "delete"]
_OPERATIONS: frozenset[str] = frozenset({"put", "get", "head", "list", "delete"})
PROBE_PREFIX = ".portability-probe/"


@dataclass
class _Fault:
    remaining: int
    error: BaseException
    operations: frozenset[str]
    key_contains: str | None

    def matches(self, operation: str, key: str) -> bool:
        return operation in self.operations and (
            self.key_contains is None or self.key_contains in key
        )


class MemoryDestination:
    """A bucket in a dict: ``objects`` maps key to bytes, ``metadata`` key to user metadata.

    Thread-safe. ``operations`` records every call as ``(operation, key)`` (``list`` records
    the prefix), including the ones that failed by injection.
    """

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.operations: list[tuple[str, str]] = []
        self._uploads: dict[str, MemoryUpload] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MemoryDestination(objects={len(self.objects)})"

    # -- fault injection ---------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        error: BaseException | Literal["transient", "permanent"] | None = "transient",
        *,
        on: Iterable[Operation] = ("put",),
        key_contains: str | None = None,
    ) -> None:
        """Make the next ``n`` matching operations raise ``error`` instead of running.

        ``n == 0`` or ``error is None`` clears every pending fault. Faults queue up: a second
        call adds to the first, and the oldest matching fault is spent first.
        """
        with self._lock:
            if n <= 0 or error is None:
                self._faults.clear()
                return
            operations = frozenset(on)
            unknown = operations - _OPERATIONS
            if unknown:
                raise ValueError(f"unknown operations {sorted(unknown)}; use {sorted(_OPERATIONS)}")
            self._faults.append(_Fault(n, _as_error(error), operations, key_contains))

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return sum(fault.remaining for fault in self._faults)

    @property
    def open_uploads(self) -> int:
        """Uploads opened and neither completed nor aborted (an S3 bucket would bill these)."""
        with self._lock:
            return len(self._uploads)

    def _enter(self, operation: str, key: str) -> None:
        """Record the call and raise the injected fault, if one matches."""
        self.operations.append((operation, key))
        for fault in self._faults:
            if fault.matches(operation, key):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                # A copy, so each raise gets its own traceback.
                raise copy.copy(fault.error)

    # -- the Destination contract ------------------------------------------------------

    def put_object(
        self,
        key: str,
        body: bytes,
        *,
        if_none_match: bool = False,
        metadata: dict[str, str] | None = None,
    ) -> None:
        with self._lock:
            self._enter("put", key)
            self._store(key, bytes(body), metadata, if_none_match=if_none_match)

    def open_upload(self, key: str, *, metadata: dict[str, str] | None = None) -> Upload:
        upload = MemoryUpload(self, key, metadata)
        with self._lock:
            self._uploads[upload.upload_id] = upload
        return upload

    def get_object(self, key: str) -> bytes:
        with self._lock:
            self._enter("get", key)
            try:
                return self.objects[key]
            except KeyError:
                raise NotFoundError(f"object {key!r} not found in the memory bucket") from None

    def head_object(self, key: str) -> ObjectInfo | None:
        with self._lock:
            self._enter("head", key)
            body = self.objects.get(key)
            if body is None:
                return None
            return ObjectInfo(key, len(body), dict(self.metadata.get(key, {})))

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            self._enter("list", prefix)
            listing = [
                ObjectInfo(key, len(body), {})
                for key, body in self.objects.items()
                if key.startswith(prefix)
            ]
        listing.sort(key=lambda info: info.key)
        yield from listing

    def delete_object(self, key: str) -> None:
        with self._lock:
            self._enter("delete", key)
            self.objects.pop(key, None)
            self.metadata.pop(key, None)

    def probe(self) -> None:
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        payload = b"portability probe\n"
        self.put_object(key, payload)
        if self.get_object(key) != payload:  # pragma: no cover - a dict does not corrupt
            raise DestinationPermanentError("the probe object read back differs")
        self.delete_object(key)

    # -- helpers for MemoryUpload ------------------------------------------------------

    def _store(
        self,
        key: str,
        body: bytes,
        metadata: dict[str, str] | None,
        *,
        if_none_match: bool = False,
    ) -> None:
        if if_none_match and key in self.objects:
            raise ObjectExistsError(f"object {key!r} already exists in the memory bucket")
        self.objects[key] = body
        self.metadata[key] = {name.lower(): value for name, value in (metadata or {}).items()}

    def _finish(self, upload: MemoryUpload, body: bytes) -> None:
        with self._lock:
            self._enter("put", upload.key)
            self._store(upload.key, body, upload.metadata)
            self._uploads.pop(upload.upload_id, None)

    def _forget(self, upload: MemoryUpload) -> None:
        with self._lock:
            self._uploads.pop(upload.upload_id, None)


class MemoryUpload:
    """An upload into a ``MemoryDestination``: invisible until ``complete()``.

    A failed ``complete()`` (an injected fault) discards the upload, as the S3 upload does
    when it aborts its multipart upload on failure.
    """

    def __init__(
        self, destination: MemoryDestination, key: str, metadata: dict[str, str] | None
    ) -> None:
        self.key = key
        self.metadata = dict(metadata or {})
        self.upload_id = uuid.uuid4().hex
        self._destination = destination
        self._chunks: list[bytes] = []
        self._state: Literal["open", "completed", "aborted"] = "open"

    def __repr__(self) -> str:
        return f"MemoryUpload(key={self.key!r}, state={self._state})"

    def write(self, data: bytes) -> None:
        if self._state != "open":
            raise RuntimeError(f"upload of {self.key!r} is {self._state}; open a new one")
        self._chunks.append(bytes(data))

    def complete(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"upload of {self.key!r} is {self._state}; open a new one")
        try:
            self._destination._finish(self, b"".join(self._chunks))
        except BaseException:
            self.abort()
            raise
        self._state = "completed"
        self._chunks = []

    def abort(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._chunks = []
            self._destination._forget(self)


def _as_error(error: BaseException | str) -> BaseException:
    if isinstance(error, BaseException):
        return error
    if error == "transient":
        return DestinationTransientError("injected transient failure (memory destination)")
    if error == "permanent":
        return DestinationPermanentError("injected permanent failure (memory destination)")
    raise ValueError(f"error must be an exception, 'transient' or 'permanent', not {error!r}")
