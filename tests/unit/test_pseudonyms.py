"""Per-app user pseudonyms: the value, and the byte-level rewrite of delivered record blocks.

The rewrite is checked against a reference that parses every record and replaces what the
rules of ``portability.pseudonyms`` name, byte for byte.
"""

from __future__ import annotations

import base64
import hmac
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from portability.categories import Category
from portability.devtools.seeded_blocks import SeededBlocks, seeded_blocks
from portability.errors import ValidationError
from portability.pseudonyms import PSEUDONYM_PATTERN, Pseudonymizer, pseudonym
from portability.records import Op
from tests.fixtures.platform import make_record

KEY = b"a test key that is long enough for HMAC-SHA256 use"
APP = 7
STAMP = "2026-01-02T03:04:05.000006Z"
WORD_KEYS = {"op", "kind", "privacy"}


@pytest.fixture(scope="module")
def population() -> SeededBlocks:
    return seeded_blocks(users=12, records_per_user=400, seed=3)


def referenced_users(blocks: SeededBlocks) -> set[str]:
    """Every user id the seeded records name: the population and the outsiders they meet."""
    users = set(blocks.user_ids)
    for by_category in blocks.blocks.values():
        for line in by_category[Category.DIRECT_MESSAGES].splitlines():
            data = orjson.loads(line)["data"]
            users |= {data["peer_user_id"], data["sender_id"]}
        for line in by_category[Category.ACTIVITY].splitlines():
            data = orjson.loads(line)["data"]
            if data["kind"] == "follow":
                users.add(data["target"])
    return users


def reference(category: Category, body: bytes, owner: str, app_id: int = APP) -> bytes:
    """The rules applied to parsed records, written back as ``records.change_line`` does."""

    def owner_replaced(value: Any, key: str | None) -> Any:
        if isinstance(value, dict):
            return {k: owner_replaced(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [owner_replaced(v, None) for v in value]
        if value == owner and key not in WORD_KEYS:
            return pseudonym(KEY, app_id, owner)
        return value

    out = []
    for line in body.splitlines():
        record = orjson.loads(line)
        data = record["data"]
        fields: tuple[str, ...] = ()
        if data is not None and category is Category.DIRECT_MESSAGES:
            fields = ("peer_user_id", "sender_id")
        if data is not None and category is Category.ACTIVITY and data["kind"] == "follow":
            fields = ("target",) if isinstance(data["target"], str) else ()
        for name in fields:
            data[name] = pseudonym(KEY, app_id, data[name])
        out.append(orjson.dumps(owner_replaced(record, None)) + b"\n")
    return b"".join(out)


def block(*records: tuple[str, dict[str, Any] | None]) -> bytes:
    """JSON Lines of ``(record id, data)`` upserts (``data`` None: a tombstone)."""
    lines = []
    for record_id, data in records:
        op = Op.DELETE if data is None else Op.UPSERT
        envelope = {"id": record_id, "op": op.value, "changed_at": STAMP, "data": data}
        lines.append(orjson.dumps(envelope) + b"\n")
    return b"".join(lines)


# -- the pseudonym -------------------------------------------------------------------------


def test_a_pseudonym_is_the_documented_hmac_and_never_changes():
    digest = hmac.digest(b"k" * 32, b"portability-pseudonym-v1\x001\x00u000001", "sha256")
    documented = "p_" + base64.b32encode(digest[:16]).decode().rstrip("=").lower()

    assert pseudonym(b"k" * 32, 1, "u000001") == documented == "p_zgnjpfuuzv4lelut3sbbjrk74q"


def test_a_pseudonym_is_the_same_on_every_call():
    assert {pseudonym(KEY, APP, "u000001") for _ in range(3)} == {pseudonym(KEY, APP, "u000001")}


def test_two_apps_know_one_user_under_different_pseudonyms():
    assert pseudonym(KEY, 1, "u000001") != pseudonym(KEY, 2, "u000001")


def test_two_users_of_one_app_have_different_pseudonyms():
    assert pseudonym(KEY, APP, "u000001") != pseudonym(KEY, APP, "u000002")


def test_another_key_gives_other_pseudonyms():
    assert pseudonym(KEY, APP, "u000001") != pseudonym(KEY + b"!", APP, "u000001")


def test_app_and_user_cannot_be_shifted_into_each_other():
    assert pseudonym(KEY, 1, "1u") != pseudonym(KEY, 11, "u")


@pytest.mark.parametrize("user_id", ["u000001", "a", "x" * 64, "-_-"])
def test_a_pseudonym_is_a_short_lower_case_record_id(user_id):
    assert re.match(PSEUDONYM_PATTERN, pseudonym(KEY, APP, user_id))


@settings(max_examples=100, deadline=None)
@given(
    key=st.binary(max_size=100),
    app_id=st.integers(0, 2**63),
    user_id=st.text(min_size=1, max_size=64),
)
def test_a_pseudonymizer_computes_exactly_the_documented_pseudonym(key, app_id, user_id):
    assert Pseudonymizer(key, app_id, "u1").pseudonym_of(user_id) == pseudonym(key, app_id, user_id)


def test_the_owner_pseudonym_is_the_users_pseudonym_for_that_app():
    assert Pseudonymizer(KEY, APP, "u000001").owner_pseudonym == pseudonym(KEY, APP, "u000001")


@pytest.mark.parametrize("user_id", ["", "a b", "x" * 65, 'u"1', "u1\n"])
def test_a_pseudonymizer_refuses_an_owner_that_is_not_a_user_id(user_id):
    with pytest.raises(ValidationError, match="user id"):
        Pseudonymizer(KEY, APP, user_id)


# -- seeded blocks -------------------------------------------------------------------------


def test_seeded_records_name_users_only_in_user_fields(population):
    """Record ids, conversation ids and URLs are opaque: a pseudonym could not reach inside."""
    users = referenced_users(population)
    for user_id, by_category in population.blocks.items():
        for category, body in by_category.items():
            for line in body.splitlines():
                record = orjson.loads(line)
                data = record["data"]
                for name in ("user_id", "peer_user_id", "sender_id"):
                    data.pop(name, None)
                if data.get("kind") == "follow":
                    data.pop("target")
                if category is Category.PROFILE:
                    record.pop("id")
                text = orjson.dumps(record).decode()
                assert [u for u in users if u in text] == [], (user_id, category, text)


@pytest.mark.parametrize("category", list(Category))
def test_rewrite_leaves_no_platform_user_id_in_a_seeded_block(population, category):
    users = referenced_users(population)
    out = b"".join(
        Pseudonymizer(KEY, APP, owner).rewrite(category, blocks[category])
        for owner, blocks in population.blocks.items()
    )

    assert [u for u in sorted(users) if u.encode() in out] == []


@pytest.mark.parametrize("category", list(Category))
def test_rewrite_of_a_seeded_block_equals_parse_and_replace(population, category):
    owner = population.user_ids[0]
    body = population.blocks[owner][category]

    assert Pseudonymizer(KEY, APP, owner).rewrite(category, body) == reference(
        category, body, owner
    )


@pytest.mark.parametrize("category", list(Category))
def test_rewrite_keeps_every_line_a_valid_record(population, category):
    owner = population.user_ids[1]
    body = population.blocks[owner][category]
    out = Pseudonymizer(KEY, APP, owner).rewrite(category, body)

    before = [orjson.loads(line) for line in body.splitlines()]
    after = [orjson.loads(line) for line in out.splitlines()]
    assert out.endswith(b"\n")
    assert len(after) == len(before) == body.count(b"\n")
    assert [r["changed_at"] for r in after] == [r["changed_at"] for r in before]


def test_rewrite_gives_the_same_bytes_every_time_and_for_every_grant_of_an_app(population):
    owner = population.user_ids[2]
    body = population.blocks[owner][Category.DIRECT_MESSAGES]
    first = Pseudonymizer(KEY, APP, owner)

    assert first.rewrite("direct_messages", body) == first.rewrite("direct_messages", body)
    assert Pseudonymizer(KEY, APP, owner).rewrite("direct_messages", body) == first.rewrite(
        "direct_messages", body
    )


def test_two_apps_receive_the_same_messages_under_unrelated_user_ids(population):
    owner = population.user_ids[0]
    body = population.blocks[owner][Category.DIRECT_MESSAGES]
    one, two = (
        [
            orjson.loads(line)["data"]
            for line in Pseudonymizer(KEY, app, owner).rewrite("direct_messages", body).splitlines()
        ]
        for app in (1, 2)
    )

    assert [m["body"] for m in one] == [m["body"] for m in two]
    assert {m["peer_user_id"] for m in one}.isdisjoint({m["peer_user_id"] for m in two})


# -- edge cases ----------------------------------------------------------------------------


def test_a_caption_that_contains_the_id_inside_a_longer_word_is_untouched():
    post = make_record("posts", "p1", caption="u000001's video, by xu000001 #u000001x")
    body = block(("p1", post))

    assert Pseudonymizer(KEY, APP, "u000001").rewrite("posts", body) == body


def test_a_text_field_that_is_exactly_the_owners_id_is_pseudonymized():
    post = make_record("posts", "p1", caption="u000001", hashtags=["u000001", "fun"])
    body = block(("p1", post))
    out = orjson.loads(Pseudonymizer(KEY, APP, "u000001").rewrite("posts", body))

    owner = pseudonym(KEY, APP, "u000001")
    assert (out["data"]["caption"], out["data"]["hashtags"]) == (owner, [owner, "fun"])


def test_the_profile_record_id_and_user_id_become_the_pseudonym():
    body = block(("u000001", make_record("profile", "u000001", "u000001")), ("u000001", None))
    out = Pseudonymizer(KEY, APP, "u000001").rewrite("profile", body)

    owner = pseudonym(KEY, APP, "u000001")
    records = [orjson.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in records] == [owner, owner]
    assert records[0]["data"]["user_id"] == owner


@pytest.mark.parametrize("owner", ["like", "follow", "upsert", "delete", "public"])
def test_an_owner_named_like_a_format_word_leaves_the_format_intact(owner):
    like = make_record("activity", "a1", kind="like", target=owner, detail={"by": owner})
    post = make_record("posts", "p1", privacy="public", caption=owner)
    activity = block(("a1", like), ("a2", None))
    posts = block(("p1", post))
    rewrite = Pseudonymizer(KEY, APP, owner).rewrite

    assert rewrite("activity", activity) == reference(Category.ACTIVITY, activity, owner)
    assert rewrite("posts", posts) == reference(Category.POSTS, posts, owner)
    assert orjson.loads(rewrite("activity", activity).splitlines()[1])["op"] == "delete"


@pytest.mark.parametrize("owner", ["id", "data", "query", "source"])
def test_an_owner_named_like_a_key_leaves_every_key_intact(owner):
    search = make_record("activity", "a1", kind="search", target=None, detail={owner: owner})
    body = block(("a1", search))
    out = Pseudonymizer(KEY, APP, owner).rewrite("activity", body)

    assert out == reference(Category.ACTIVITY, body, owner)
    assert list(orjson.loads(out)["data"]["detail"]) == [owner]


def test_an_owner_id_after_an_escaped_quote_in_a_text_stays_text():
    post = make_record("posts", "p1", caption='she said "u000001')
    body = block(("p1", post))

    assert Pseudonymizer(KEY, APP, "u000001").rewrite("posts", body) == body


def test_a_follow_names_a_user_and_a_like_names_a_post():
    follow = make_record("activity", "a1", kind="follow", target="u000002")
    like = make_record("activity", "a2", kind="like", target="u000002")
    body = block(("a1", follow), ("a2", like))
    out = [
        orjson.loads(line)
        for line in Pseudonymizer(KEY, APP, "u1").rewrite("activity", body).splitlines()
    ]

    assert [r["data"]["target"] for r in out] == [pseudonym(KEY, APP, "u000002"), "u000002"]


def test_a_follow_without_a_target_stays_null():
    follow = make_record("activity", "a1", kind="follow", target=None)
    body = block(("a1", follow))

    assert Pseudonymizer(KEY, APP, "u000001").rewrite("activity", body) == body


def test_fields_in_another_order_are_rewritten_all_the_same():
    message = make_record("direct_messages", "m1", "u000001")
    shuffled = dict(reversed(message.items()))
    follow = make_record("activity", "a1", kind="follow", target="u000002")
    follow_shuffled = dict(reversed(follow.items()))
    messages = block(("m0", message), ("m1", shuffled))
    activity = block(("a0", follow), ("a1", follow_shuffled))
    pseudonymizer = Pseudonymizer(KEY, APP, "u000001")

    assert pseudonymizer.rewrite("direct_messages", messages) == reference(
        Category.DIRECT_MESSAGES, messages, "u000001"
    )
    assert pseudonymizer.rewrite("activity", activity) == reference(
        Category.ACTIVITY, activity, "u000001"
    )


@pytest.mark.parametrize("peer", ['a"b', "a\\b", "ünï", "line\nbreak", "u2\u2028"])
def test_a_peer_id_with_json_escapes_becomes_the_pseudonym_of_the_decoded_id(peer):
    message = make_record("direct_messages", "m1", "u1", peer_user_id=peer, sender_id=peer)
    body = block(("m1", message))
    out = orjson.loads(Pseudonymizer(KEY, APP, "u1").rewrite("direct_messages", body))

    assert out["data"]["peer_user_id"] == out["data"]["sender_id"] == pseudonym(KEY, APP, peer)


def test_a_message_block_rewritten_with_its_upsert_count_equals_the_one_counted(population):
    owner = population.user_ids[3]
    body = population.blocks[owner][Category.DIRECT_MESSAGES]
    told = Pseudonymizer(KEY, APP, owner).rewrite(
        "direct_messages", body, upserts=body.count(b"\n")
    )

    assert told == Pseudonymizer(KEY, APP, owner).rewrite("direct_messages", body)


def test_an_irregular_message_is_caught_with_the_upsert_count_given():
    message = make_record("direct_messages", "m1", "u1", peer_user_id="u2", sender_id="u2")
    body = block(("m0", message), ("m1", dict(reversed(message.items()))))
    out = Pseudonymizer(KEY, APP, "u1").rewrite("direct_messages", body, upserts=2)

    assert out == reference(Category.DIRECT_MESSAGES, body, "u1")


def test_an_empty_block_stays_empty():
    assert Pseudonymizer(KEY, APP, "u1").rewrite("posts", b"") == b""


# -- what the rewrite relies on -----------------------------------------------------------


def test_a_record_written_with_its_fields_shuffled_is_delivered_in_published_order(
    sqlite_engine,
):
    from portability.platform.store import add_platform_users, write_changes

    follow = make_record("activity", "a1", kind="follow", target="u000002")
    with sqlite_engine.begin() as conn:
        add_platform_users(conn, [("u000001", "DE")])
        write_changes(conn, "u000001", "activity", upserts={"a1": dict(reversed(follow.items()))})
        line = conn.execute(text("SELECT line FROM platform_changes")).scalar_one()

    assert list(orjson.loads(line)["data"]) == ["id", "kind", "target", "detail", "occurred_at"]


# -- property ------------------------------------------------------------------------------

user_ids = st.one_of(
    st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"),
    st.sampled_from(["u000001", "u1", "like", "follow", "id", "op", "kind", "de", "ok", "-"]),
)
texts = st.one_of(st.text(max_size=20), user_ids, user_ids.map(lambda u: f"{u} {u}x"))


@st.composite
def records(draw: st.DrawFn, owner: str) -> tuple[Category, bytes]:
    category = draw(st.sampled_from(list(Category)))
    rows: list[tuple[str, dict[str, Any] | None]] = []
    for index in range(draw(st.integers(1, 6))):
        record_id = owner if category is Category.PROFILE else draw(st.sampled_from(["r1", owner]))
        if draw(st.booleans()) and index:
            rows.append((record_id, None))
            continue
        fields: dict[str, Any] = {}
        if category is Category.POSTS:
            fields = {"caption": draw(texts), "hashtags": draw(st.lists(texts, max_size=3))}
        elif category is Category.ACTIVITY:
            kind = draw(st.sampled_from(["follow", "like", "search"]))
            target = draw(st.one_of(st.none(), user_ids))
            fields = {"kind": kind, "target": target, "detail": {draw(user_ids): draw(texts)}}
        elif category is Category.DIRECT_MESSAGES:
            peer = draw(user_ids)
            fields = {
                "peer_user_id": peer,
                "sender_id": draw(st.sampled_from([owner, peer])),
                "body": draw(texts),
            }
        else:
            fields = {"bio": draw(texts), "username": draw(texts)}
        data = make_record(category, record_id, owner, **fields)
        if category is Category.POSTS or category is Category.ACTIVITY:
            data["id"] = record_id
        rows.append((record_id, data))
    return category, block(*rows)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), owner=user_ids, app_id=st.integers(1, 10**6))
def test_rewrite_equals_parse_then_replace_for_any_ids(data, owner, app_id):
    category, body = data.draw(records(owner))

    out = Pseudonymizer(KEY, app_id, owner).rewrite(category, body)

    assert out == reference(category, body, owner, app_id)
