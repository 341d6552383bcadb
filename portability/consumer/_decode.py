"""From a stored part's bytes to store rows, in delivery order, a block of lines at a time.

The bucket is not trusted: every line is parsed as JSON (one ``orjson.loads``) and its envelope
checked strictly -- exactly the members ``id``, ``op``, ``changed_at``, ``data``, each once;
string ``id`` and ``changed_at``; ``op`` ``upsert`` with an object or ``delete`` with
``null``. A line exactly as ``portability.records.change_line`` writes it re-serialises to
itself byte for byte (``orjson.dumps``), which proves it has no duplicate member at any depth,
and its ``data`` is then stored as the very text that was delivered. Any other line (another
key order, whitespace, escapes) is checked for duplicate members by a slower parse and its
``data`` stored re-serialised. What reaches the store is always one valid JSON object.

Sizes are capped (``ConsumerLimits``): a line, and the inflated size of a part, absolute and as
a ratio of its stored size, are refused past their cap without being held.
"""

from __future__ import annotations

import io
import queue
import re
import threading
import zlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from operator import eq

import orjson

from portability.strict_json import StrictJSONError, refuse_duplicates

from ._limits import DEFAULT_LIMITS, ConsumerLimits

__all__ = [
    "Block",
    "LineError",
    "PartLimitError",
    "blocks_in_background",
    "decode_block",
    "iter_blocks",
    "iter_lines",
]

CHUNK_BYTES = 1 << 20

_ENVELOPE = frozenset({"id", "op", "changed_at", "data"})
_CANONICAL_ORDER = ("id", "op", "changed_at", "data")
_DATA_MEMBER = b',"data":'

_UPSERTS = re.compile(
    r'^\{"id":"([A-Za-z0-9_-]{1,64})","op":"upsert",'
    r'"changed_at":"([^"\\\x00-\x1f]*)","data":(\{.*\})\}$',
    re.MULTILINE,
)
_CANONICAL = re.compile(
    r'^\{"id":"([A-Za-z0-9_-]{1,64})","op":"(upsert|delete)",'
    r'"changed_at":"([^"\\\x00-\x1f]*)","data":(null|\{.*\})\}$',
    re.MULTILINE,
)

Row = tuple[str, ...]


class LineError(ValueError):
    """A line that is not a valid change record; ``line`` counts from 1 within the part."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


class PartLimitError(ValueError):
    """A part that inflates, or holds a line, beyond the consumer's limits."""


@dataclass(slots=True)
class Block:
    """Decoded changes of consecutive lines: runs of upserts ``(user_id, id, changed_at,
    data)`` and deletes ``(user_id, id)``, to be applied in order."""

    runs: list[tuple[bool, list[Row]]] = field(default_factory=list)
    upserts: int = 0
    deletes: int = 0
    #: Physical lines in the block, blank ones included (for numbering the next block).
    lines: int = 0


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


def decode_block(
    block: bytes,
    user_id: str,
    first_line: int = 1,
    max_line_bytes: int = DEFAULT_LIMITS.max_line_bytes,
) -> Block:
    """Decode one block of whole lines; ``LineError`` names the first bad line.

    The exporter's own lines take a fast path with the same outcome as the general one: a
    regular expression over the block checks the envelope, text for text, and each ``data``
    is parsed on its own (so it is exactly one JSON object: nothing can follow it inside the
    envelope) and must re-serialise to itself (so no member is named twice). A block where
    any of that fails is decoded again line by line, which accepts what is merely written
    differently and names the line at fault.
    """
    if len(block) <= max_line_bytes:  # else a line may be too long: the general path checks
        try:
            text = block.decode()
        except UnicodeDecodeError:
            text = ""
        lines = text.count("\n")
        upserts = _UPSERTS.findall(text) if text else []
        if upserts and len(upserts) == lines and _are_canonical_objects(d for _, _, d in upserts):
            rows: list[Row] = [(user_id, i, t, d) for i, t, d in upserts]
            return Block(runs=[(True, rows)], upserts=lines, lines=lines)
        found = _CANONICAL.findall(text) if text else []
        if found and len(found) == lines:
            decoded = _canonical_block(found, user_id, lines)
            if decoded is not None:
                return decoded
    return _decode_strict(block, user_id, first_line, max_line_bytes)


def _are_canonical_objects(texts: Iterable[str]) -> bool:
    """Whether every text is one JSON object that ``orjson`` writes back identically.

    One lazy chain of C calls: each value is parsed, written back and compared, then dropped
    (holding a block's values at once is several times slower: cache misses and GC passes).
    """
    texts = list(texts)
    try:
        return all(map(eq, map(orjson.dumps, map(orjson.loads, texts)), map(str.encode, texts)))
    except orjson.JSONDecodeError:
        return False


def _canonical_block(
    found: list[tuple[str, str, str, str]], user_id: str, lines: int
) -> Block | None:
    """Upserts and deletes in the exporter's form; ``None`` sends the block the general way."""
    if not _are_canonical_objects(d for _, op, _, d in found if op == "upsert"):
        return None
    decoded = Block(lines=lines)
    runs = decoded.runs
    rows: list[Row] = []
    is_upsert_run = None
    for record_id, op, changed_at, data in found:
        is_upsert = op == "upsert"
        if is_upsert == (data == "null"):
            return None  # an upsert without data or a delete with data: named by the general path
        if is_upsert is not is_upsert_run:
            rows = []
            runs.append((is_upsert, rows))
            is_upsert_run = is_upsert
        rows.append((user_id, record_id, changed_at, data) if is_upsert else (user_id, record_id))
    decoded.upserts = sum(len(batch) for is_upsert, batch in runs if is_upsert)
    decoded.deletes = lines - decoded.upserts
    return decoded


def _decode_strict(
    block: bytes,
    user_id: str,
    first_line: int = 1,
    max_line_bytes: int = DEFAULT_LIMITS.max_line_bytes,
) -> Block:
    """The general path: every line parsed and checked on its own."""
    decoded = Block(lines=block.count(b"\n"))
    runs = decoded.runs
    loads, dumps = orjson.loads, orjson.dumps
    order, data_member, skip = _CANONICAL_ORDER, _DATA_MEMBER, len(_DATA_MEMBER)
    rows: list[Row] = []
    is_upsert_run = None
    upserts = 0
    number = first_line - 1
    for line in block.split(b"\n"):
        number += 1
        if not line:
            continue
        if len(line) > max_line_bytes:
            raise LineError(number, f"longer than {max_line_bytes} bytes")
        try:
            record = loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.strip():
                continue
            raise LineError(number, f"not a change record (not valid JSON: {exc})") from None
        # As the exporter writes it: the four members in order, and nothing that re-serialises
        # differently -- so no member twice, at any depth.
        is_canonical = type(record) is dict and tuple(record) == order and dumps(record) == line
        if is_canonical:
            record_id, op, changed_at, data = record.values()
        else:
            record_id, op, changed_at, data = _checked_envelope(record, line, number)
        if type(record_id) is not str or type(changed_at) is not str:
            raise LineError(number, "id and changed_at must be strings")
        if op == "upsert" and type(data) is dict:
            is_upsert = True
            # ``data`` is the last member: the text after the first ``,"data":`` (no string
            # before it can hold an unescaped quote).
            text = (
                line[line.find(data_member) + skip : -1].decode()
                if is_canonical
                else dumps(data).decode()
            )
            row: Row = (user_id, record_id, changed_at, text)
            upserts += 1
        elif op == "delete" and data is None:
            is_upsert = False
            row = (user_id, record_id)
        else:
            raise LineError(number, f"op {op!r} with data of type {type(data).__name__}")
        if is_upsert is not is_upsert_run:
            rows = []
            runs.append((is_upsert, rows))
            is_upsert_run = is_upsert
        rows.append(row)
    decoded.upserts = upserts
    decoded.deletes = sum(len(batch) for _, batch in runs) - upserts
    return decoded


def _checked_envelope(record: object, line: bytes, number: int) -> tuple[object, ...]:
    """The four envelope members of a line not in the exporter's exact form, or a refusal."""
    if type(record) is not dict:
        raise LineError(
            number, f"not a change record (a JSON {type(record).__name__}, not an object)"
        )
    if record.keys() != _ENVELOPE:
        missing = sorted(_ENVELOPE - record.keys())
        unknown = sorted(record.keys() - _ENVELOPE)
        found = [f"missing {', '.join(missing)}"] if missing else []
        if unknown:
            names = ", ".join(repr(name[:40]) for name in unknown[:5])
            found.append(f"unknown member(s) {names}")
        raise LineError(number, f"not a change record ({'; '.join(found)})")
    try:
        refuse_duplicates(line)
    except StrictJSONError as exc:
        raise LineError(number, f"not a change record ({exc})") from None
    return record["id"], record["op"], record["changed_at"], record["data"]
