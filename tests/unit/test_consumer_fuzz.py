"""Fuzzing the two places where the bucket's bytes first meet the consumer.

Properties, over generated and mutated inputs:

* the line decoder either refuses a block with ``LineError`` or returns rows whose ``data`` is
  exactly one JSON object, with the same meaning whichever path (fast or general) decoded
  it -- it never raises anything else;
* the manifest verifier either refuses a mutated signed manifest or the mutation did not change
  what it means; reading a manifest never raises, whatever the bytes.

``PORTABILITY_FUZZ_EXAMPLES`` (default 150 per property) scales a longer run.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from portability.consumer._decode import LineError, _decode_strict, decode_block
from portability.consumer._layout import StreamId
from portability.consumer._plan import read_manifest
from portability.destinations.memory import MemoryDestination
from portability.manifest import Manifest, PartEntry, PositionRange, manifest_key, part_key
from portability.signing import (
    SignatureError,
    canonical_bytes,
    new_signing_key_text,
    parse_signing_keys,
    sign_manifest,
    verify_manifest,
)
from portability.sources.position import Position
from portability.strict_json import StrictJSONError, loads_strict

EXAMPLES = int(os.environ.get("PORTABILITY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

KEY = parse_signing_keys(new_signing_key_text())[0]
STREAM = StreamId("u1", "posts", 1)
FOLDER = STREAM.folder("x")

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
data_objects = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
ids = st.text(alphabet="ab-_0Z", min_size=1, max_size=6) | st.text(max_size=6)


@st.composite
def canonical_lines(draw) -> bytes:
    if draw(st.booleans()):
        record = {"id": draw(ids), "op": "upsert", "changed_at": draw(st.text(max_size=8))}
        record["data"] = draw(data_objects)
    else:
        record = {"id": draw(ids), "op": "delete", "changed_at": draw(st.text(max_size=8))}
        record["data"] = None
    return orjson.dumps(record)


HOSTILE_PIECES = [
    b',"user_id":"evil"',
    b',"z":{}',
    b',"id":"x"',
    b',"data":{}',
    b"}",
    b"{",
    b'"',
    b"\\",
    b"\x00",
    b"\xff",
    b"\n",
    b" ",
    b"NaN",
    b"\\ud800",
]


@st.composite
def mutated(draw, source) -> bytes:
    text = bytearray(draw(source))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "flip"]))
        if action == "insert":
            piece = draw(st.sampled_from(HOSTILE_PIECES) | st.binary(min_size=1, max_size=4))
            text[at:at] = piece
        elif action == "delete" and text:
            end = min(len(text), at + draw(st.integers(1, 8)))
            del text[at:end]
        elif text:
            index = min(at, len(text) - 1)
            text[index] ^= draw(st.integers(1, 255))
    return bytes(text)


lines = canonical_lines() | mutated(canonical_lines()) | st.binary(max_size=40)
blocks = st.lists(lines, min_size=1, max_size=6).map(lambda ls: b"\n".join(ls) + b"\n")


def meaning(decoded) -> list:
    """Rows with ``data`` parsed: what a reader of the store sees."""
    return [
        (up, [(*row[:3], orjson.loads(row[3])) if up else row for row in batch])
        for up, batch in decoded.runs
    ]


@FUZZ
@given(blocks)
def test_the_line_decoder_refuses_or_yields_one_unambiguous_object_per_line(block):
    try:
        decoded = decode_block(block, "u1")
    except LineError:
        event("block refused")
        with pytest.raises(LineError):
            _decode_strict(block, "u1")
        return
    event("block accepted")
    rows = [row for up, batch in decoded.runs if up for row in batch]
    for _, record_id, changed_at, data in rows:
        assert isinstance(record_id, str) and isinstance(changed_at, str)
        assert isinstance(orjson.loads(data), dict)
    assert meaning(decoded) == meaning(_decode_strict(block, "u1"))
    assert decoded.upserts + decoded.deletes == sum(
        1 for line in block.split(b"\n") if line.strip()
    )


def _manifest() -> bytes:
    key = part_key(FOLDER, None, Position.at(5), 1, "gzip")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    part = PartEntry(key=key, records=5, upserts=4, deletes=1, bytes=100, sha256="0" * 64)
    manifest = Manifest(
        run_id=1,
        app_id=2,
        authorization_id=1,
        user="u1",
        category="posts",
        categories=["posts"],
        sequence=1,
        position=PositionRange(from_=None, to="5:5:"),
        reset=True,
        replay_reason="first_delivery",
        compression="gzip",
        parts=[part],
        records=5,
        bytes=100,
        started_at=now,
        created_at=now,
    )
    return sign_manifest(manifest.to_json(), KEY)


SIGNED = _manifest()
MEANING = canonical_bytes(orjson.loads(SIGNED))


@st.composite
def edited_manifests(draw) -> bytes:
    """JSON-level edits an attacker would try: change, add or drop a member."""
    document = orjson.loads(SIGNED)
    name = draw(st.sampled_from(sorted(document)))
    edit = draw(st.sampled_from(["set", "drop", "add"]))
    if edit == "set":
        document[name] = draw(json_values)
    elif edit == "drop":
        del document[name]
    else:
        document[draw(st.text(max_size=6))] = draw(json_values)
    return orjson.dumps(document, option=draw(st.sampled_from([0, orjson.OPT_INDENT_2])))


manifests = mutated(st.just(SIGNED)) | edited_manifests()


@FUZZ
@given(manifests)
def test_the_manifest_verifier_refuses_every_change_of_meaning(raw):
    try:
        verify_manifest(raw, [KEY.public_key()])
    except SignatureError:
        event("refused")
        return
    event("accepted (same meaning)")
    assert canonical_bytes(loads_strict(raw)) == MEANING  # accepted: it means the same


@FUZZ
@given(manifests, st.booleans())
def test_reading_a_manifest_never_raises_and_refuses_what_it_cannot_vouch_for(raw, verify):
    bucket = MemoryDestination()
    key = manifest_key(FOLDER, 1)
    bucket.put_object(key, raw)
    keys = [KEY.public_key()] if verify else None

    pending = read_manifest(bucket, "x", STREAM, 1, key, verify_keys=keys)

    event(f"{'verify' if verify else 'plain'}: {'usable' if pending.usable else 'refused'}")
    if pending.usable is not None:
        try:
            parsed = loads_strict(raw)
        except StrictJSONError:
            pytest.fail(f"applied a manifest that is not strict JSON: {raw[:200]!r}")
        if verify:
            assert canonical_bytes(parsed) == MEANING
