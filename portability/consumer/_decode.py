"""From a stored part's bytes to store rows, in delivery order, a block of lines at a time.

Two ways to read a line, one result. Lines exactly as ``portability.records.change_line``
writes them (compact JSON, keys ``id, op, changed_at, data`` in that order, a plain record id)
are split by one regular expression over a whole block, and ``data`` is kept as the very text
that was delivered -- no parse and re-serialise of every record, which is most of the cost of
applying a part. Any other valid JSON line (another key order, whitespace, escapes in the id)
takes the general path through ``orjson``. Both check the envelope (string ``id`` and
``changed_at``, ``op`` upsert with an object or delete with ``null``); the content of ``data``
is the producer's, vouched for by the part's SHA-256 in the manifest.
"""

from __future__ import annotations

import io
import queue
import re
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field

import orjson

__all__ = [
    "Block",
    "LineError",
    "blocks_in_background",
    "decode_block",
    "iter_blocks",
    "iter_lines",
]

CHUNK_BYTES = 1 << 20

_UPSERTS = re.compile(
    r'^\{"id":"([A-Za-z0-9_-]{1,64})","op":"upsert",'
    r'"changed_at":"([^"\\\n]*)","data":(\{.*\})\}$',
    re.MULTILINE,
)
_CANONICAL = re.compile(
    r'^\{"id":"([A-Za-z0-9_-]{1,64})","op":"(upsert|delete)",'
    r'"changed_at":"([^"\\\n]*)","data":(null|\{.*\})\}$',
    re.MULTILINE,
)

Row = tuple[str, ...]


class LineError(ValueError):
    """A line that is not a valid change record; ``line`` counts from 1 within the part."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


@dataclass(slots=True)
class Block:
    """Decoded changes of consecutive lines: runs of upserts ``(user_id, id, changed_at,
    data)`` and deletes ``(user_id, id)``, to be applied in order."""

    runs: list[tuple[bool, list[Row]]] = field(default_factory=list)
    upserts: int = 0
    deletes: int = 0
    #: Physical lines in the block, blank ones included (for numbering the next block).
    lines: int = 0


def _decompressed_chunks(body: bytes, compression: str) -> Iterator[bytes]:
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


def iter_blocks(body: bytes, compression: str) -> Iterator[bytes]:
    """The decompressed part as blocks of whole lines (each block ends with a newline)."""
    carry = b""
    for chunk in _decompressed_chunks(body, compression):
        cut = chunk.rfind(b"\n") + 1
        if not cut:
            carry += chunk
            continue
        yield b"".join((carry, memoryview(chunk)[:cut])) if carry else chunk[:cut]
        carry = chunk[cut:]
    if carry:
        yield carry + b"\n"


def blocks_in_background(
    body: bytes, compression: str, pool: Executor, depth: int = 4
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
            for block in iter_blocks(body, compression):
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


def iter_lines(body: bytes, compression: str) -> Iterator[list[bytes]]:
    """The non-empty lines of a stored part, in order, a block of lines at a time."""
    for block in iter_blocks(body, compression):
        yield [line for line in block.split(b"\n") if line]


def decode_block(block: bytes, user_id: str, first_line: int = 1) -> Block:
    """Decode one block of whole lines; ``LineError`` names the first bad line."""
    try:
        text = block.decode()
    except UnicodeDecodeError:
        return _decode_general(block, user_id, first_line)  # names the line at fault
    lines = text.count("\n")
    upserts = _UPSERTS.findall(text)
    if len(upserts) == lines:  # the common block: nothing but upserts
        rows: list[Row] = [(user_id, i, t, d) for i, t, d in upserts]
        return Block(runs=[(True, rows)], upserts=lines, lines=lines)
    found = _CANONICAL.findall(text)
    if len(found) != lines:
        return _decode_general(block, user_id, first_line)
    decoded = Block(lines=lines)
    for index, (record_id, op, changed_at, data) in enumerate(found):
        is_upsert = op == "upsert"
        if is_upsert == (data == "null"):
            raise LineError(first_line + index, f"an {op} with data {data[:20]!r}")
        _append(decoded, is_upsert, user_id, record_id, changed_at, data)
    return decoded


def _append(
    decoded: Block, is_upsert: bool, user_id: str, record_id: str, changed_at: str, data: str
) -> None:
    runs = decoded.runs
    if not runs or runs[-1][0] != is_upsert:
        runs.append((is_upsert, []))
    if is_upsert:
        runs[-1][1].append((user_id, record_id, changed_at, data))
        decoded.upserts += 1
    else:
        runs[-1][1].append((user_id, record_id))
        decoded.deletes += 1


def _decode_general(block: bytes, user_id: str, first_line: int) -> Block:
    decoded = Block(lines=block.count(b"\n"))
    for number, line in enumerate(block.split(b"\n"), start=first_line):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
            record_id, op, changed_at = record["id"], record["op"], record["changed_at"]
            data = record["data"]
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise LineError(number, f"not a change record ({exc})") from None
        if type(record_id) is not str or type(changed_at) is not str:
            raise LineError(number, "id and changed_at must be strings")
        if op == "upsert" and type(data) is dict:
            _append(decoded, True, user_id, record_id, changed_at, orjson.dumps(data).decode())
        elif op == "delete" and data is None:
            _append(decoded, False, user_id, record_id, changed_at, "")
        else:
            raise LineError(number, f"op {op!r} with data of type {type(data).__name__}")
    return decoded
