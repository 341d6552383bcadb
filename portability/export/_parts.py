"""Writing one JSON Lines part: compress, hash and stream it to the destination.

Memory is bounded by one batch of lines plus the destination's multipart chunk, whatever the
size of the part. The SHA-256 and size are of the stored (compressed) bytes, which is what a
consumer downloads and checks.
"""

from __future__ import annotations

import hashlib
import zlib
from typing import Protocol

import zstandard

from portability.destinations.base import Destination, Upload
from portability.manifest import PartEntry

__all__ = ["PartWriter", "make_compressor"]


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def make_compressor(compression: str) -> _Compressor:
    """gzip level 1 (zlib writes mtime 0, so output is deterministic), zstd level 3, or none."""
    if compression == "gzip":
        return zlib.compressobj(1, zlib.DEFLATED, 31)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compressobj()  # type: ignore[no-any-return,unused-ignore]
    if compression == "none":
        return _Identity()
    raise ValueError(f"unknown compression {compression!r}")


class PartWriter:
    """One part object being written; ``close()`` makes it visible and describes it."""

    def __init__(self, destination: Destination, key: str, compression: str) -> None:
        self.key = key
        self._upload: Upload = destination.open_upload(key)
        self._compressor = make_compressor(compression)
        self._sha = hashlib.sha256()
        self._size = 0
        self.records = 0
        self.deletes = 0

    def write(self, body: bytes, records: int, deletes: int) -> None:
        """Append a block of ``records`` newline-terminated JSON records."""
        self.records += records
        self.deletes += deletes
        self._emit(self._compressor.compress(body))

    def _emit(self, data: bytes) -> None:
        if data:
            self._sha.update(data)
            self._size += len(data)
            self._upload.write(data)

    def close(self) -> PartEntry:
        self._emit(self._compressor.flush())
        self._upload.complete()
        return PartEntry(
            key=self.key,
            records=self.records,
            upserts=self.records - self.deletes,
            deletes=self.deletes,
            bytes=self._size,
            sha256=self._sha.hexdigest(),
        )

    def abort(self) -> None:
        self._upload.abort()
