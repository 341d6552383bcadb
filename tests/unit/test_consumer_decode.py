"""Lines become store rows the same way whichever path reads them."""

from __future__ import annotations

import json

import orjson
import pytest

from portability.consumer._decode import LineError, decode_block
from tests.fixtures.exports import changes


def block_of(lines) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def canonical(count=20, **kwargs) -> list[bytes]:
    return [c.line().encode() for c in changes("activity", "u1", count, **kwargs)]


def rows(decoded) -> list[tuple[bool, list]]:
    return [(is_upsert, list(batch)) for is_upsert, batch in decoded.runs]


def parsed(decoded) -> list[tuple]:
    """Runs with data parsed, to compare paths that may space JSON differently."""
    return [
        (up, [(*r[:3], orjson.loads(r[3])) if up else r for r in batch])
        for up, batch in decoded.runs
    ]


def test_canonical_lines_keep_the_delivered_data_text():
    lines = canonical()

    decoded = decode_block(block_of(lines), "u1")

    assert decoded.upserts == 20
    texts = [row[3] for _, batch in decoded.runs for row in batch]
    assert texts == [line.decode().split(',"data":', 1)[1][:-1] for line in lines]  # byte for byte


def test_lines_in_another_form_decode_to_the_same_rows():
    lines = canonical(30, distinct=10, delete_every=4)
    # The same records, re-serialised with other key order and spacing.
    respaced = [
        json.dumps(dict(reversed(list(orjson.loads(line).items()))), indent=None).encode()
        for line in lines
    ]

    fast = decode_block(block_of(lines), "u1")
    general = decode_block(block_of(respaced), "u1")

    assert parsed(general) == parsed(fast)
    assert (general.upserts, general.deletes) == (fast.upserts, fast.deletes) == (23, 7)


def test_upserts_and_deletes_stay_in_order_as_runs():
    lines = canonical(8, delete_every=3)

    decoded = decode_block(block_of(lines), "u1")

    assert [(up, len(batch)) for up, batch in decoded.runs] == [
        (True, 2),
        (False, 1),
        (True, 2),
        (False, 1),
        (True, 2),
    ]


def test_blank_lines_are_skipped():
    lines = canonical(3)

    decoded = decode_block(block_of([lines[0], b"", lines[1], b"  ", lines[2]]), "u1")

    assert decoded.upserts == 3


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'{"id":"a","op":"upsert","changed_at":"t","data":null}', "upsert"),
        (b'{"id":"a","op":"delete","changed_at":"t","data":{}}', "delete"),
        (b'{"id":"a","op":"merge","changed_at":"t","data":{}}', "merge"),
        (b'{"id":7,"op":"upsert","changed_at":"t","data":{}}', "strings"),
        (b'{"id":"a","op":"upsert","data":{}}', "not a change record"),
        (b'{"id":"a","op":"upsert","changed_at":"t","data":{}', "not a change record"),
        (b"[1, 2]", "not a change record"),
    ],
)
def test_a_line_that_is_not_a_change_record_is_named_by_number(line, problem):
    good = canonical(2)

    with pytest.raises(LineError) as caught:
        decode_block(block_of([*good, line]), "u1", first_line=11)

    assert caught.value.line == 13
    assert problem in str(caught.value)
