"""Streaming a user's archive as ZIP volumes, with bounded memory.

``stream-zip`` pulls each file's bytes from a generator and yields the ZIP's bytes as it goes;
they go straight into a multipart upload (``Upload``). Memory is one batch of records, the
compressor's window and one multipart chunk, whatever the archive's size.

A volume ends at the first batch boundary after its compressed bytes reach ``volume_bytes``:
the file in progress ends there and continues in the next volume under a numbered name
(``posts-2.jsonl``). Every volume is a complete ZIP. The README opens the first volume and
the manifest (every file's SHA-256) closes the last.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from stat import S_IFREG

from stream_zip import ZIP_64, Method, stream_zip

from portability.categories import Category
from portability.destinations.base import Upload
from portability.sources.base import ChangeBatch
from portability.user_exports._readme import MANIFEST_NAME, README_NAME, Member
from portability.user_exports._render import Rendering

__all__ = ["ArchivePlan", "Section", "Volume", "write_archive"]

_MODE = S_IFREG | 0o600
#: Deflate level 1: most of level 6's saving on JSON, several times faster.
_LEVEL = 1


@dataclass(frozen=True)
class Section:
    """One category's records, as the snapshot read yields them."""

    category: Category
    batches: Iterator[ChangeBatch]


@dataclass(frozen=True)
class Volume:
    number: int
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ArchivePlan:
    rendering: Rendering
    readme: bytes
    #: The manifest's bytes, given every file before it.
    manifest: Callable[[list[Member]], bytes]
    modified_at: datetime
    volume_bytes: int
    #: Opens the upload of volume ``n`` (from 1); its key is ``key_of(n)``.
    open_volume: Callable[[int], Upload]
    key_of: Callable[[int], str]
    #: Told the records of each block written (progress, cancellation checks).
    on_records: Callable[[int], None]


@dataclass
class _Sink:
    upload: Upload
    size: int = 0
    sha: hashlib._Hash = field(default_factory=hashlib.sha256)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        self.sha.update(data)
        self.upload.write(data)


class _Writer:
    def __init__(self, plan: ArchivePlan, sections: Iterable[Section]) -> None:
        self.plan = plan
        self.sections = iter(sections)
        self.section: Section | None = next(self.sections, None)
        self.pieces: dict[Category, int] = {}
        self.members: list[Member] = []
        self.volumes: list[Volume] = []
        #: A batch read but left for the next volume.
        self.held: ChangeBatch | None = None

    def write(self) -> list[Volume]:
        number = 1
        while True:
            sink = _Sink(self.plan.open_volume(number))
            try:
                for chunk in stream_zip(self._files(number, sink), get_compressobj=_deflate):
                    sink.write(chunk)
                sink.upload.complete()
            except BaseException:
                sink.upload.abort()
                raise
            key = self.plan.key_of(number)
            self.volumes.append(Volume(number, key, sink.size, sink.sha.hexdigest()))
            if self.section is None:
                return self.volumes
            number += 1

    def _files(
        self, number: int, sink: _Sink
    ) -> Iterator[tuple[str, datetime, int, Method, Iterable[bytes]]]:
        at = self.plan.modified_at
        if number == 1:
            yield README_NAME, at, _MODE, ZIP_64, self._fixed(README_NAME, number, self.plan.readme)
        while self.section is not None and sink.size < self.plan.volume_bytes:
            category = self.section.category
            piece = self.pieces[category] = self.pieces.get(category, 0) + 1
            suffix = "" if piece == 1 else f"-{piece}"
            name = f"{category.value}{suffix}.{self.plan.rendering.extension}"
            yield name, at, _MODE, ZIP_64, self._records(name, number, sink)
        if self.section is None:
            yield MANIFEST_NAME, at, _MODE, ZIP_64, self._manifest(number)

    def _fixed(self, name: str, number: int, data: bytes) -> Iterator[bytes]:
        yield data
        self.members.append(Member(name, number, 0, len(data), hashlib.sha256(data).hexdigest()))

    def _manifest(self, number: int) -> Iterator[bytes]:
        yield self.plan.manifest(list(self.members))  # built once every other file is done

    def _records(self, name: str, number: int, sink: _Sink) -> Iterator[bytes]:
        """The current section's records until it ends or the volume is full."""
        assert self.section is not None
        rendering, sha = self.plan.rendering, hashlib.sha256()
        size = records = 0

        def out(data: bytes) -> bytes:
            nonlocal size
            sha.update(data)
            size += len(data)
            return data

        yield out(rendering.head(self.section.category))
        while True:
            batch = self.held or next(self.section.batches, None)
            self.held = None
            if batch is None:  # the category is complete
                self.section = next(self.sections, None)
                break
            if records and sink.size >= self.plan.volume_bytes:
                self.held = batch  # the next volume starts with it
                break
            if batch.records:
                yield out(rendering.body(batch.body))
                records += batch.records
                self.plan.on_records(batch.records)
        yield out(rendering.foot())
        self.members.append(Member(name, number, records, size, sha.hexdigest()))


def _deflate() -> zlib._Compress:
    return zlib.compressobj(_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)


def write_archive(
    plan: ArchivePlan, sections: Iterable[Section]
) -> tuple[list[Volume], list[Member]]:
    """Write every section into volumes 1, 2, ...; the volumes and the files they hold."""
    writer = _Writer(plan, sections)
    volumes = writer.write()
    return volumes, writer.members
