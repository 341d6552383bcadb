"""From whole lines of a part to store rows, in delivery order, a block of lines at a time.

The bucket is not trusted: every line's ``data`` is parsed as JSON and its envelope checked
strictly -- exactly the members ``id``, ``op``, ``changed_at``, ``data``, each once; string
``id`` and ``changed_at``; ``op`` ``upsert`` with an object or ``delete`` with ``null``. What
reaches the store is always one valid JSON object, and nothing of a line outside its ``data``.

Lines exactly as ``portability.records.change_line`` writes them take a fast path (see
``decode_block``) whose ``data`` text is stored as delivered; any other line (another key
order, whitespace, escapes) is parsed on its own, its envelope checked for a repeated member,
and its ``data`` stored re-serialised. A line longer than the limit is refused. What is inside
``data`` is the producer's: a name repeated inside it is not refused (our exporter never writes
one, and in verify mode the manifest's SHA-256 vouches that the part is ours) -- checking
that would cost a tenth of the consumer's throughput.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

import orjson

from portability.strict_json import StrictJSONError, refuse_duplicates

from ._limits import DEFAULT_LIMITS

__all__ = ["Block", "LineError", "decode_block"]

_ENVELOPE = frozenset({"id", "op", "changed_at", "data"})
_CANONICAL_ORDER = ("id", "op", "changed_at", "data")
_DATA_MEMBER = b',"data":'
_third = itemgetter(2)

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


@dataclass(slots=True)
class Block:
    """Decoded changes of consecutive lines: runs of upserts ``(user_id, id, changed_at,
    data)`` and deletes ``(user_id, id)``, to be applied in order."""

    runs: list[tuple[bool, list[Row]]] = field(default_factory=list)
    upserts: int = 0
    deletes: int = 0
    #: Physical lines in the block, blank ones included (for numbering the next block).
    lines: int = 0


def decode_block(
    block: bytes,
    user_id: str,
    first_line: int = 1,
    max_line_bytes: int = DEFAULT_LIMITS.max_line_bytes,
) -> Block:
    """Decode one block of whole lines; ``LineError`` names the first bad line.

    The exporter's own lines take a fast path with the same outcome as the general one: a
    regular expression over the block checks the envelope, text for text, and each ``data``
    is parsed on its own, so it is exactly one JSON object and nothing can follow it inside
    the envelope. A block where any of that fails is decoded again line by line, which
    accepts what is merely written differently and names the line at fault.
    """
    if len(block) <= max_line_bytes:  # else a line may be too long: the general path checks
        try:
            text = block.decode()
        except UnicodeDecodeError:
            text = ""
        lines = text.count("\n")
        upserts = _UPSERTS.findall(text) if text else []
        if upserts and len(upserts) == lines and _are_objects(map(_third, upserts)):
            rows: list[Row] = [(user_id, i, t, d) for i, t, d in upserts]
            return Block(runs=[(True, rows)], upserts=lines, lines=lines)
        found = _CANONICAL.findall(text) if text else []
        if found and len(found) == lines:
            decoded = _canonical_block(found, user_id, lines)
            if decoded is not None:
                return decoded
    return _decode_strict(block, user_id, first_line, max_line_bytes)


def _are_objects(texts: Iterable[str]) -> bool:
    """Whether every text is exactly one JSON object.

    One ``orjson.loads`` per text in a lazy chain of C calls, each value dropped at once
    (holding a block's values together is several times slower: cache misses, GC passes).
    The regular expressions only let texts that start with ``{`` through, so a text that
    parses is an object.
    """
    try:
        deque(map(orjson.loads, texts), maxlen=0)
    except orjson.JSONDecodeError:
        return False
    return True


def _canonical_block(
    found: list[tuple[str, str, str, str]], user_id: str, lines: int
) -> Block | None:
    """Upserts and deletes in the exporter's form; ``None`` sends the block the general way."""
    if not _are_objects(d for _, op, _, d in found if op == "upsert"):
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
        # differently -- so no member twice.
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
        refuse_duplicates(line, top_level_only=True)
    except StrictJSONError as exc:
        raise LineError(number, f"not a change record ({exc})") from None
    return record["id"], record["op"], record["changed_at"], record["data"]
