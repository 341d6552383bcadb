"""The seeder and mutator: reproducible, complete, valid data whose feed replays to the store."""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, func, select

from portability.categories import EEA_COUNTRIES, Category
from portability.cli._errors import EXIT_NOT_FOUND
from portability.db.engine import make_engine
from portability.db.models import PlatformUser
from portability.errors import NotFoundError, ValidationError
from portability.platform.mutate import mutate
from portability.platform.seed import format_micros, seed, split_counts
from portability.platform.shapes import shape_for
from portability.platform.store import current_state, fast_change_line
from portability.platform.tables import PlatformChange
from portability.records import Op, change_line, format_timestamp

NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def fresh_engine(sqlite_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture
def twin_engine(sqlite_url: str, tmp_path: Path) -> Iterator[Engine]:
    """A second empty migrated database (copied before anything is written to the first)."""
    copy = tmp_path / "twin.db"
    shutil.copyfile(sqlite_url.removeprefix("sqlite:///"), copy)
    engine = make_engine(f"sqlite:///{copy}")
    yield engine
    engine.dispose()


def feed_lines(engine: Engine, user_id: str | None = None) -> list[str]:
    query = select(PlatformChange.line).order_by(PlatformChange.txid, PlatformChange.position)
    if user_id is not None:
        query = query.where(PlatformChange.user_id == user_id)
    with engine.connect() as conn:
        return list(conn.scalars(query))


def replay(engine: Engine, user_id: str, category: Category) -> dict[str, object]:
    """What a consumer holds after applying the user's whole feed for ``category``."""
    state: dict[str, object] = {}
    with engine.connect() as conn:
        lines = conn.scalars(
            select(PlatformChange.line)
            .where(PlatformChange.user_id == user_id, PlatformChange.category == category.value)
            .order_by(PlatformChange.txid, PlatformChange.position)
        )
        for record in map(orjson.loads, lines):
            if record["op"] == "delete":
                state.pop(record["id"], None)
            else:
                state[record["id"]] = record["data"]
    return state


def test_same_seed_gives_byte_identical_lines(fresh_engine: Engine, twin_engine: Engine) -> None:
    seed(fresh_engine, users=2, records_per_user=60, seed=5, now=NOW)
    seed(twin_engine, users=2, records_per_user=60, seed=5, now=NOW)

    assert feed_lines(fresh_engine) == feed_lines(twin_engine)


def test_another_seed_gives_other_data(fresh_engine: Engine, twin_engine: Engine) -> None:
    seed(fresh_engine, users=1, records_per_user=60, seed=5, now=NOW)
    seed(twin_engine, users=1, records_per_user=60, seed=6, now=NOW)

    assert feed_lines(fresh_engine) != feed_lines(twin_engine)


def test_every_category_is_seeded_in_the_stated_split(fresh_engine: Engine) -> None:
    report = seed(fresh_engine, users=3, records_per_user=101, now=NOW)

    expected = {
        Category.PROFILE: 3,
        Category.POSTS: 60,
        Category.ACTIVITY: 165,
        Category.DIRECT_MESSAGES: 75,
    }
    assert report.user_ids == ("u000001", "u000002", "u000003")
    assert report.records == 303
    assert report.per_category == expected
    with fresh_engine.connect() as conn:
        rows = conn.execute(select(PlatformChange.category, func.count()).group_by("category"))
        feed = {category: count for category, count in rows}
    assert feed == {c.value: n for c, n in expected.items()}
    for category, n in expected.items():
        assert sum(len(current_state(fresh_engine, u, category)) for u in report.user_ids) == n


def test_split_counts_always_add_up_to_records_per_user() -> None:
    for n in (1, 2, 5, 99, 1000, 12345):
        counts = split_counts(n)
        assert sum(counts.values()) == n
        assert counts[Category.PROFILE] == 1


def test_seeded_records_are_valid_and_replay_to_the_current_state(fresh_engine: Engine) -> None:
    report = seed(fresh_engine, users=2, records_per_user=200, now=NOW)

    for user_id in report.user_ids:
        for category in Category:
            state = current_state(fresh_engine, user_id, category)
            for record_id, data in state.items():
                shape_for(category).check(user_id, record_id, data)
            assert replay(fresh_engine, user_id, category) == state


def test_seeded_data_is_varied(fresh_engine: Engine) -> None:
    seed(fresh_engine, users=2, records_per_user=400, now=NOW)
    activity = current_state(fresh_engine, "u000001", Category.ACTIVITY).values()
    posts = current_state(fresh_engine, "u000001", Category.POSTS).values()
    messages = current_state(fresh_engine, "u000001", Category.DIRECT_MESSAGES).values()

    assert {a["kind"] for a in activity} == {"like", "follow", "watch", "search", "login"}
    assert any(p["hashtags"] for p in posts)
    assert all(f"#{tag}" in p["caption"] for p in posts for tag in p["hashtags"])
    assert {p["privacy"] for p in posts} >= {"public", "friends"}
    assert len({m["peer_user_id"] for m in messages}) > 1
    assert len({m["conversation_id"] for m in messages}) > 1
    stamps = [a["occurred_at"] for a in activity]
    assert min(stamps) >= format_timestamp(NOW - timedelta(days=366))
    assert max(stamps) < format_timestamp(NOW)


def test_default_countries_are_mostly_eea_with_a_few_others(fresh_engine: Engine) -> None:
    report = seed(fresh_engine, users=300, records_per_user=1, now=NOW)

    outside = sum(n for c, n in report.countries.items() if c not in EEA_COUNTRIES)
    assert report.eea_users >= 0.8 * 300
    assert outside > 0


def test_countries_can_be_chosen(fresh_engine: Engine) -> None:
    report = seed(fresh_engine, users=5, records_per_user=1, countries=["US"], now=NOW)

    assert report.countries == {"US": 5}
    with fresh_engine.connect() as conn:
        assert set(conn.scalars(select(PlatformUser.country))) == {"US"}


def test_reseeding_continues_after_the_highest_user(fresh_engine: Engine) -> None:
    seed(fresh_engine, users=2, records_per_user=5, now=NOW)
    again = seed(fresh_engine, users=2, records_per_user=5, now=NOW)

    assert again.user_ids == ("u000003", "u000004")
    with fresh_engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(PlatformUser)) == 4


def test_seeding_over_existing_users_is_refused_and_writes_nothing(fresh_engine: Engine) -> None:
    seed(fresh_engine, users=2, records_per_user=5, now=NOW)
    before = feed_lines(fresh_engine)

    with pytest.raises(ValidationError, match="u000002 already exist"):
        seed(fresh_engine, users=2, records_per_user=5, first_user=2, now=NOW)

    assert feed_lines(fresh_engine) == before


@pytest.mark.parametrize(("users", "records"), [(0, 5), (1, 0)])
def test_empty_seed_is_refused(fresh_engine: Engine, users: int, records: int) -> None:
    with pytest.raises(ValidationError, match="at least 1"):
        seed(fresh_engine, users=users, records_per_user=records)


def test_fast_line_and_timestamp_match_the_published_formatters() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        micros = rng.randrange(0, 4_102_444_800_000_000)  # 1970 .. 2100
        when = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
            microsecond=micros % 1_000_000
        )
        assert format_micros(micros) == format_timestamp(when)
    data = {"id": "p1", "caption": 'quote " and \\ and ✨', "n": 1}
    stamp = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    for op, payload in ((Op.UPSERT, data), (Op.DELETE, None)):
        assert fast_change_line("p1", op, format_timestamp(stamp), payload) == change_line(
            "p1", op, stamp, payload
        )


# -- mutate ----------------------------------------------------------------------------------


def test_mutate_updates_and_tombstones_and_the_store_follows(fresh_engine: Engine) -> None:
    seed(fresh_engine, users=1, records_per_user=200, now=NOW)
    before = {c: current_state(fresh_engine, "u000001", c) for c in Category}
    feed_before = len(feed_lines(fresh_engine))

    report = mutate(fresh_engine, user_id="u000001", updates=12, deletes=5, seed=3)

    assert sum(map(len, report.updated.values())) == 12
    assert sum(map(len, report.deleted.values())) == 5
    assert Category.PROFILE not in report.deleted
    new_lines = [orjson.loads(line) for line in feed_lines(fresh_engine)[feed_before:]]
    assert Counter(r["op"] for r in new_lines) == {"upsert": 12, "delete": 5}
    for category in Category:
        after = current_state(fresh_engine, "u000001", category)
        deleted = set(report.deleted.get(category, []))
        updated = set(report.updated.get(category, []))
        assert set(after) == set(before[category]) - deleted
        assert {rid for rid in after if after[rid] != before[category][rid]} == updated
        assert replay(fresh_engine, "u000001", category) == after


def test_mutate_stamps_edits_with_the_change_time(fresh_engine: Engine) -> None:
    seed(fresh_engine, users=1, records_per_user=100, now=NOW)
    when = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    report = mutate(
        fresh_engine, user_id="u000001", updates=5, deletes=0, categories="posts", now=when
    )

    posts = current_state(fresh_engine, "u000001", Category.POSTS)
    assert list(report.updated) == [Category.POSTS]
    assert {posts[rid]["updated_at"] for rid in report.updated[Category.POSTS]} == {
        format_timestamp(when)
    }


def test_mutate_with_the_same_seed_picks_the_same_records(
    fresh_engine: Engine, twin_engine: Engine
) -> None:
    reports = []
    for engine in (fresh_engine, twin_engine):
        seed(engine, users=1, records_per_user=100, now=NOW)
        reports.append(mutate(engine, user_id="u000001", updates=4, deletes=3, seed=11, now=NOW))

    assert reports[0] == reports[1]


def test_mutate_refuses_more_deletes_than_records(fresh_engine: Engine) -> None:
    seed(fresh_engine, users=1, records_per_user=10, now=NOW)

    with pytest.raises(ValidationError, match="cannot delete 50 records"):
        mutate(fresh_engine, user_id="u000001", updates=0, deletes=50)


def test_mutate_of_an_unknown_user_is_not_found(fresh_engine: Engine) -> None:
    with pytest.raises(NotFoundError, match="u000404"):
        mutate(fresh_engine, user_id="u000404", updates=1, deletes=0)


@pytest.mark.services
def test_postgres_copy_path_writes_the_same_feed_and_state_as_sqlite(
    fresh_engine: Engine, pg_engine: Engine
) -> None:
    for engine in (fresh_engine, pg_engine):
        seed(engine, users=2, records_per_user=150, seed=9, now=NOW)

    assert feed_lines(pg_engine) == feed_lines(fresh_engine)
    for category in Category:
        for user_id in ("u000001", "u000002"):
            pg_state = current_state(pg_engine, user_id, category)
            assert pg_state == current_state(fresh_engine, user_id, category)
            assert replay(pg_engine, user_id, category) == pg_state


# -- CLI -------------------------------------------------------------------------------------


def invoke(cli, url: str, tmp_path: Path, *args: str):
    """Through ``portability.cli.run``, the real entry point (the shared ``cli`` fixture)."""
    env = {"PORTABILITY_DATABASE_URL": url, "PORTABILITY_DATA_DIR": str(tmp_path / "data")}
    return cli(*args, env=env)


def test_seed_command_prints_a_json_summary(cli, sqlite_url: str, tmp_path) -> None:
    result = invoke(cli, sqlite_url, tmp_path, "seed", "--users", "2", "--records-per-user", "21")

    assert result.exit_code == 0, result.stderr
    assert "seeded 2 users (u000001..u000002" in result.stdout

    again = invoke(
        cli, sqlite_url, tmp_path, "seed", "--users", "1", "--records-per-user", "5", "--json"
    )
    summary = json.loads(again.stdout)
    assert (summary["first_user"], summary["records"]) == ("u000003", 5)
    assert summary["per_category"] == {
        "profile": 1,
        "posts": 1,
        "activity": 2,
        "direct_messages": 1,
    }


def test_mutate_command_reports_changed_ids(cli, sqlite_url: str, tmp_path) -> None:
    invoke(cli, sqlite_url, tmp_path, "seed", "--users", "1", "--records-per-user", "50")

    result = invoke(
        cli, sqlite_url, tmp_path, "mutate", "--user", "u000001", "--updates", "3",
        "--deletes", "2", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert sum(map(len, report["updated"].values())) == 3
    assert sum(map(len, report["deleted"].values())) == 2


def test_mutate_command_of_an_unknown_user_fails_with_not_found(
    cli, sqlite_url: str, tmp_path
) -> None:
    result = invoke(cli, sqlite_url, tmp_path, "mutate", "--user", "u000404", "--updates", "1")

    assert result.exit_code == EXIT_NOT_FOUND
    assert len(result.error_lines) == 1 and "user u000404 has no records" in result.stderr


def test_seeding_is_reproducible_across_processes(tmp_path):
    """Same arguments, different interpreters (hash seeds): the same feed, byte for byte."""
    import os
    import subprocess
    import sys

    script = (
        "import hashlib, sys\n"
        "from sqlalchemy import text\n"
        "from portability.db.engine import make_engine\n"
        "from portability.db.migrate import upgrade\n"
        "from portability.platform.seed import seed\n"
        "e = make_engine(f'sqlite:///{sys.argv[1]}'); upgrade(e)\n"
        "seed(e, users=2, records_per_user=300, seed=5)\n"
        "with e.connect() as c:\n"
        "    q = text('SELECT line FROM platform_changes ORDER BY position')\n"
        "    lines = c.execute(q).scalars()\n"
        "    print(hashlib.sha256('\\n'.join(lines).encode()).hexdigest())\n"
    )
    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / f"{hash_seed}.db")],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
