"""A stored part's bytes as blocks of whole lines, inflated within the consumer's limits.

A part is inflated in chunks of ~1 MiB and cut into blocks that end with a newline; a line
spanning chunks is gathered piecewise. The bucket is not trusted, so the inflated size is
capped (absolute, and as a ratio of the stored size: a decompression bomb stops at the cap,
not when memory runs out), and so is a line.
"""

from __future__ import annotations

import io
import queue
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor

from ._limits import DEFAULT_LIMITS, ConsumerLimits

__all__ = ["CHUNK_BYTES", "PartLimitError", "blocks_in_background", "iter_blocks", "iter_lines"]

CHUNK_BYTES = 1 << 20


class PartLimitError(ValueError):
    """A part that inflates, or holds a line, beyond the consumer's limits."""


def _inflated(body: bytes, compression: str) -> Iterator[bytes]:
    if compression == "none":
        view = memoryview(body)
        for start in range(0, len(body), CHUNK_BYTES):
            yield bytes(view[start : start + CHUNK_BYTES])
    elif compression == "gzip":
        # Concatenated gzip members are valid gzip: start a new decompressor after each one.
        rest = body
        while rest:
            inflater = zlib.decompressobj(wbits=31)
            data = rest
            while not inflater.eof:
                out = inflater.decompress(data, CHUNK_BYTES)
                data = inflater.unconsumed_tail
                if out:
                    yield out
                elif not data:
                    break
            if not inflater.eof:
                raise zlib.error("truncated gzip stream")
            rest = inflater.unused_data
    elif compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(body), read_across_frames=True
        )
        while chunk := reader.read(CHUNK_BYTES):
            yield chunk
    else:
        raise ValueError(f"unknown compression {compression!r}")


def _decompressed_chunks(body: bytes, compression: str, cap: int) -> Iterator[bytes]:
    """Chunks of at most ~1 MiB; ``PartLimitError`` as soon as more than ``cap`` came out."""
    total = 0
    for chunk in _inflated(body, compression):
        total += len(chunk)
        if total > cap:
            raise PartLimitError(
                f"inflates to more than {cap} bytes from {len(body)} stored "
                "(the consumer's limit; a decompression bomb?)"
            )
        yield chunk


def iter_blocks(
    body: bytes, compression: str, limits: ConsumerLimits = DEFAULT_LIMITS
) -> Iterator[bytes]:
    """The decompressed part as blocks of whole lines (each block ends with a newline).

    A line that spans chunks is gathered piecewise (linear, not quadratic) and refused past
    ``limits.max_line_bytes``.
    """
    carry: list[bytes] = []
    carried = 0
    for chunk in _decompressed_chunks(body, compression, limits.inflated_cap(len(body))):
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            carry.append(chunk)
            carried += len(chunk)
            if carried > limits.max_line_bytes:
                raise PartLimitError(f"holds a line longer than {limits.max_line_bytes} bytes")
            continue
        if carry:
            carry.append(chunk[:cut])
            yield b"".join(carry)
        else:
            yield chunk[:cut]
        tail = chunk[cut:]
        carry, carried = ([tail], len(tail)) if tail else ([], 0)
    if carry:
        carry.append(b"\n")
        yield b"".join(carry)


def blocks_in_background(
    body: bytes,
    compression: str,
    pool: Executor,
    depth: int = 4,
    limits: ConsumerLimits = DEFAULT_LIMITS,
) -> Iterator[bytes]:
    """``iter_blocks`` run on a pool thread, at most ``depth`` blocks ahead.

    zlib and zstd release the GIL while they inflate, so decompression overlaps the parsing
    and SQLite work of the calling thread; memory stays bounded by ``depth`` blocks.
    """
    ahead: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
    stopped = threading.Event()

    def offer(item: bytes | BaseException | None) -> bool:
        while not stopped.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for block in iter_blocks(body, compression, limits):
                if not offer(block):
                    return
            offer(None)
        except BaseException as exc:  # handed to the consuming thread, raised there
            offer(exc)

    pool.submit(produce)
    try:
        while (item := ahead.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stopped.set()
        while not ahead.empty():  # unblock a producer waiting to put
            ahead.get_nowait()


def iter_lines(
    body: bytes, compression: str, limits: ConsumerLimits = DEFAULT_LIMITS
) -> Iterator[list[bytes]]:
    """The non-empty lines of a stored part, in order, a block of lines at a time."""
    for block in iter_blocks(body, compression, limits):
        yield [line for line in block.split(b"\n") if line]
