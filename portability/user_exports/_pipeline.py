"""Overlapping the three steps of an archive: read, compress, upload.

Reading a category (``COPY`` rows), deflating and hashing, and waiting for S3 to take a part
each leave the other two idle when run in turn. Here each category's snapshot read runs in its
own thread, a few batches ahead (``PrefetchedRead``), and the volume's bytes go up from a
thread of their own (``BackgroundUpload``). Both hand over through bounded queues, so memory
stays bounded: ``depth`` batches per category and ``depth`` pieces per upload.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from portability.categories import Category
from portability.destinations.base import Upload
from portability.sources.base import ChangeBatch, Source

__all__ = ["BackgroundUpload", "PrefetchedRead"]

_END = object()
_POLL = 0.1


class _Handover:
    """A bounded queue whose producer gives up once ``stop`` is set."""

    def __init__(self, depth: int) -> None:
        self.items: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()

    def put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.items.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False


class PrefetchedRead:
    """One category's ``read_state``, read in a thread up to ``depth`` batches ahead. The read
    opens and closes in that thread; ``close()`` stops it early."""

    def __init__(
        self, source: Source, user_id: str, category: Category, batch_size: int, depth: int = 2
    ) -> None:
        self.category = category
        self._handover = _Handover(depth)
        self._thread = threading.Thread(
            target=self._read,
            args=(source, user_id, category, batch_size),
            name=f"user-export-read-{category.value}",
            daemon=True,
        )
        self._thread.start()

    def _read(self, source: Source, user_id: str, category: Category, batch_size: int) -> None:
        try:
            with source.read_state(user_id, category, batch_size) as state:
                for batch in state.batches:
                    if not self._handover.put(batch):
                        return
            self._handover.put(_END)
        except BaseException as exc:  # handed to the reader of the batches, raised there
            self._handover.put(exc)

    def batches(self) -> Iterator[ChangeBatch]:
        while True:
            item = self._handover.items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._handover.stop.set()
        self._thread.join()


class BackgroundUpload:
    """An ``Upload`` whose writes are sent from a thread, ``depth`` pieces behind at most.
    A failure of the thread is raised by the next ``write`` or by ``complete``."""

    def __init__(self, upload: Upload, depth: int = 16) -> None:
        self._upload = upload
        self._handover = _Handover(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._send, name="user-export-upload", daemon=True)
        self._thread.start()

    def _send(self) -> None:
        try:
            while True:
                try:
                    item = self._handover.items.get(timeout=_POLL)
                except queue.Empty:
                    if self._handover.stop.is_set():
                        return
                    continue
                if item is _END:
                    return
                self._upload.write(item)
        except BaseException as exc:
            self._error = exc
            self._handover.stop.set()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def write(self, data: bytes) -> None:
        self._raise()
        if not self._handover.put(data):
            self._raise()

    def complete(self) -> None:
        self._handover.put(_END)
        self._thread.join()
        self._raise()
        self._upload.complete()

    def abort(self) -> None:
        self._handover.stop.set()
        self._thread.join()
        self._upload.abort()
