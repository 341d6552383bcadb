"""The published JSON Schemas (docs/schemas/) describe exactly what we deliver.

Real lines from the platform's change feed and real manifests must validate, and the schemas
must be strict enough that a change of shape (a field removed, renamed or retyped) fails here
before it reaches a developer.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from sqlalchemy import text

from portability.categories import Category
from portability.destinations.memory import MemoryDestination
from portability.devtools.seeded_blocks import seeded_blocks
from portability.manifest import Manifest
from portability.pseudonyms import PSEUDONYM_PATTERN, Pseudonymizer
from portability.records import SCHEMA_VERSION, Op, change_line
from tests.fixtures.exports import ExportWriter, changes, record_data

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
CATEGORIES = [c.value for c in Category]


def load(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load(name), format_checker=FormatChecker())


def errors(name: str, instance: Any) -> list[str]:
    return [error.message for error in validator(name).iter_errors(instance)]


def line(category: str, op: Op = Op.UPSERT, n: int = 3) -> dict[str, Any]:
    record_id = "u1" if category == "profile" else f"{category[:2]}-1"
    data = None if op is Op.DELETE else record_data(category, record_id, "u1", n)
    at = datetime(2026, 1, 31, 12, tzinfo=UTC)
    return orjson.loads(change_line(record_id, op, at, data))


@pytest.mark.parametrize("name", [*CATEGORIES, "manifest"])
def test_every_schema_is_a_valid_draft_2020_12_schema_of_the_current_version(name):
    schema = load(name)

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:portability:schema:{SCHEMA_VERSION}:{name}"
    assert schema["x-schema-version"] == SCHEMA_VERSION


def test_the_manifest_schema_pins_the_schema_version_the_export_writes():
    assert load("manifest")["properties"]["schema_version"] == {
        "const": SCHEMA_VERSION,
        "description": load("manifest")["properties"]["schema_version"]["description"],
    }


@pytest.mark.parametrize("category", CATEGORIES)
@pytest.mark.parametrize("n", range(6))
def test_upserts_of_every_category_validate(category, n):
    assert errors(category, line(category, Op.UPSERT, n)) == []


@pytest.mark.parametrize("category", CATEGORIES)
def test_tombstones_of_every_category_validate(category):
    assert errors(category, line(category, Op.DELETE)) == []


def test_every_line_the_platform_feed_delivers_validates(sqlite_engine):
    from portability.platform.seed import seed
    from portability.platform.store import write_changes

    report = seed(sqlite_engine, users=3, records_per_user=60)
    user_id = report.user_ids[0]
    with sqlite_engine.begin() as conn:
        post_id = conn.execute(
            text("SELECT record_id FROM platform_changes WHERE category = 'posts' LIMIT 1")
        ).scalar_one()
        owner = conn.execute(
            text("SELECT user_id FROM platform_changes WHERE record_id = :id"), {"id": post_id}
        ).scalar_one()
        write_changes(conn, owner, Category.POSTS, deletes=[post_id])
        rows = conn.execute(text("SELECT category, line FROM platform_changes")).all()

    problems = [
        (category, message, feed_line)
        for category, feed_line in rows
        for message in errors(category, orjson.loads(feed_line))
    ]
    assert problems == []
    assert {category for category, _ in rows} == set(CATEGORIES)
    assert any('"op":"delete"' in feed_line for _, feed_line in rows)
    assert user_id


@pytest.mark.parametrize("name", [*CATEGORIES, "manifest"])
def test_every_schema_publishes_the_pseudonym_pattern_the_code_makes(name):
    assert load(name)["$defs"]["pseudonym"]["pattern"] == PSEUDONYM_PATTERN


def test_pseudonymized_lines_validate_and_name_users_only_by_pseudonym():
    seeded = seeded_blocks(users=3, records_per_user=200)
    problems, user_fields = [], []
    for owner, blocks in seeded.blocks.items():
        pseudonymizer = Pseudonymizer(b"k" * 32, 7, owner)
        for category, body in blocks.items():
            for written in pseudonymizer.rewrite(category, body).splitlines():
                record = orjson.loads(written)
                problems += errors(category.value, record)
                data = record["data"]
                if category is Category.PROFILE:
                    user_fields += [record["id"], data["user_id"]]
                elif category is Category.DIRECT_MESSAGES:
                    user_fields += [data["peer_user_id"], data["sender_id"]]
                elif category is Category.ACTIVITY and data["kind"] == "follow":
                    user_fields.append(data["target"])

    assert problems == []
    assert len(user_fields) > 100
    assert [u for u in user_fields if not re.match(PSEUDONYM_PATTERN, u)] == []


def test_a_manifest_validates_against_its_schema():
    writer = ExportWriter(MemoryDestination(), prefix="exports", records_per_part=10)
    delivered = writer.deliver(list(changes("posts", "u1", 25, delete_every=4)))

    assert errors("manifest", orjson.loads(delivered.manifest.to_json())) == []


def test_the_manifest_schema_names_exactly_the_fields_of_the_manifest_model():
    model = Manifest.model_json_schema(by_alias=True)
    schema = load("manifest")

    assert set(schema["properties"]) == set(model["properties"])
    assert set(schema["required"]) == set(model["properties"])
    part = model["$defs"]["PartEntry"]["properties"]
    assert set(schema["properties"]["parts"]["items"]["properties"]) == set(part)
    position = model["$defs"]["PositionRange"]["properties"]
    assert set(schema["properties"]["position"]["properties"]) == set(position)


def _drop(path: tuple[str, ...]):
    def mutate(doc: dict[str, Any]) -> None:
        *head, last = path
        target = doc
        for step in head:
            target = target[step]
        del target[last]

    return mutate


def _set(path: tuple[str, ...], value: Any):
    def mutate(doc: dict[str, Any]) -> None:
        *head, last = path
        target = doc
        for step in head:
            target = target[step]
        target[last] = value

    return mutate


def _rename(path: tuple[str, ...], new: str):
    def mutate(doc: dict[str, Any]) -> None:
        *head, last = path
        target = doc
        for step in head:
            target = target[step]
        target[new] = target.pop(last)

    return mutate


BROKEN_RECORDS = {
    "envelope field removed": ("posts", _drop(("changed_at",))),
    "envelope field added": ("posts", _set(("user_id",), "u1")),
    "unknown op": ("posts", _set(("op",), "insert")),
    "upsert without data": ("posts", _set(("data",), None)),
    "timestamp without microseconds": ("posts", _set(("changed_at",), "2026-01-31T12:00:00Z")),
    "profile field removed": ("profile", _drop(("data", "bio"))),
    "profile field renamed": ("profile", _rename(("data", "follower_count"), "followers")),
    "profile count as text": ("profile", _set(("data", "follower_count"), "12")),
    "profile birth date as timestamp": (
        "profile",
        _set(("data", "birth_date"), "1990-01-01T00:00:00.000000Z"),
    ),
    "post video field renamed": ("posts", _rename(("data", "video", "url"), "href")),
    "post video flattened": ("posts", _set(("data", "video"), "https://cdn/v.mp4")),
    "post hashtags as text": ("posts", _set(("data", "hashtags"), "fun,tag1")),
    "post unknown privacy": ("posts", _set(("data", "privacy"), "secret")),
    "post like count negative": ("posts", _set(("data", "like_count"), -1)),
    "post field added": ("posts", _set(("data", "views"), 3)),
    "activity unknown kind": ("activity", _set(("data", "kind"), "share")),
    "activity detail as text": ("activity", _set(("data", "detail"), "{}")),
    "message field removed": ("direct_messages", _drop(("data", "sender_id"))),
    "message edited_at as number": ("direct_messages", _set(("data", "edited_at"), 0)),
}


@pytest.mark.parametrize("case", sorted(BROKEN_RECORDS))
def test_a_record_whose_shape_changed_fails_its_schema(case):
    category, mutate = BROKEN_RECORDS[case]
    instance = copy.deepcopy(line(category))
    mutate(instance)

    assert errors(category, instance) != []


def test_a_tombstone_that_carries_data_fails_its_schema():
    instance = line("posts", Op.DELETE)
    instance["data"] = line("posts")["data"]

    assert errors("posts", instance) != []


BROKEN_MANIFESTS = {
    "field removed": _drop(("position",)),
    "field added": _set(("prefix",), "exports"),
    "newer schema version": _set(("schema_version",), SCHEMA_VERSION + 1),
    "position renamed": _rename(("position", "from"), "from_"),
    "sequence zero": _set(("sequence",), 0),
    "unknown compression": _set(("compression",), "brotli"),
    "part digest in upper case": lambda doc: doc["parts"][0].update(sha256="A" * 64),
    "part without size": lambda doc: doc["parts"][0].pop("bytes"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_MANIFESTS))
def test_a_manifest_whose_shape_changed_fails_its_schema(case):
    writer = ExportWriter(MemoryDestination(), prefix="exports")
    instance = orjson.loads(writer.deliver(list(changes("posts", "u1", 5))).manifest.to_json())
    BROKEN_MANIFESTS[case](instance)

    assert errors("manifest", instance) != []
