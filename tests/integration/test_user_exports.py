""" "Download your data" end to end in process: the snapshot read streamed as ZIP volumes into
the export bucket (moto over HTTP), the formats, the volume split, the guards, cancel, delete
and expiry."""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import orjson
import pytest

from portability.categories import Category
from portability.db.base import utcnow
from portability.errors import ConfigurationError, ConflictError, NotFoundError, RateLimitedError
from portability.registry import delete_user
from portability.user_exports import lifecycle, user_export_housekeeping
from tests.fixtures.user_exports import files_of, verify_manifest


def test_a_json_export_holds_every_current_record_of_the_chosen_categories(exports):
    export_id = exports.request(categories=["posts", "activity"])
    assert exports.run(export_id).status == "ready"

    files = files_of(exports.volumes(export_id))
    assert sorted(files) == ["README.txt", "activity.jsonl", "manifest.json", "posts.jsonl"]
    for category in (Category.POSTS, Category.ACTIVITY):
        assert files[f"{category.value}.jsonl"].decode().splitlines() == exports.store_lines(
            category
        )
    row = exports.row(export_id)
    lines = sum(len(exports.store_lines(c)) for c in (Category.POSTS, Category.ACTIVITY))
    assert (row.status, row.records, row.progress, row.volumes) == ("ready", lines, lines, 1)


def test_the_readme_explains_each_file_and_field_and_the_manifest_checksums_verify(exports):
    export_id = exports.request(categories="all")
    exports.run(export_id)

    volumes = exports.volumes(export_id)
    manifest = verify_manifest(volumes)
    readme = files_of(volumes)["README.txt"].decode()
    for name in ("profile.jsonl", "posts.jsonl", "manifest.json", "caption", "peer_user_id"):
        assert name in readme
    assert manifest["records"] == sum(len(exports.store_lines(c)) for c in Category)


class _Sections(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        self.sections += tag == "section"


def test_the_text_format_renders_each_record_as_a_section_of_a_readable_page(exports):
    export_id = exports.request(categories=["direct_messages"], fmt="text")
    exports.run(export_id)

    files = files_of(exports.volumes(export_id))
    page = files["direct_messages.html"].decode()
    parser = _Sections()
    parser.feed(page)
    messages = [orjson.loads(line) for line in exports.store_lines(Category.DIRECT_MESSAGES)]
    assert parser.sections == len(messages) > 0
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    first_body = messages[0]["data"]["body"]
    assert f"<dd>{first_body}</dd>" in page or "&" in first_body


def test_past_the_volume_size_the_archive_continues_in_numbered_volumes(
    make_exports, sqlite_url, moto_endpoint
):
    exports = make_exports(sqlite_url, moto_endpoint, user_export_volume_bytes=6000)
    export_id = exports.request(categories="all")
    exports.run(export_id)

    volumes = exports.volumes(export_id)
    assert len(volumes) == exports.row(export_id).volumes >= 3
    verify_manifest(volumes)
    files = files_of(volumes)
    for category in Category:
        pieces = sorted(
            (name for name in files if name.split(".")[0].split("-")[0] == category.value),
            key=lambda name: (len(name), name),
        )
        lines = [line for name in pieces for line in files[name].decode().splitlines()]
        assert lines == exports.store_lines(category), category
    assert "README.txt" in volumes[0].namelist() and "manifest.json" in volumes[-1].namelist()


def test_a_second_export_while_one_is_in_progress_is_refused_with_the_reason(exports):
    first = exports.request()
    with pytest.raises(ConflictError, match=f"export {first} is queued: one export at a time"):
        exports.request(categories=["posts"])


def test_another_user_may_ask_while_one_export_runs_and_from_any_country(exports):
    exports.request()  # alice, DE
    bob = exports.request(user_id=exports.users["bob"])  # US: the EEA rule is for apps only
    assert exports.run(bob).status == "ready"


def test_more_requests_than_the_rate_limit_allows_are_refused_until_the_window_passes(
    make_exports, sqlite_url, moto_endpoint
):
    exports = make_exports(sqlite_url, moto_endpoint, user_export_rate_limit=2)
    for _ in range(2):
        exports.run(exports.request(categories=["profile"]))
    with pytest.raises(RateLimitedError, match="2 exports were requested") as refused:
        exports.request(categories=["profile"])
    assert 0 < refused.value.retry_after <= 24 * 3600


def test_another_users_export_is_not_found(exports):
    export_id = exports.request()
    with exports.runtime.sessions() as session, pytest.raises(NotFoundError):
        lifecycle.get_export(session, export_id, user_id=exports.users["bob"])


def test_a_cancelled_export_is_not_run_and_a_duplicate_message_backs_off(exports):
    export_id = exports.request()
    with exports.runtime.sessions.begin() as session:
        assert lifecycle.cancel_export(session, export_id, user_id=exports.user_id, now=utcnow())
    assert exports.run(export_id).status == "cancelled"
    assert exports.object_keys() == []


def test_cancelling_a_running_export_stops_it_and_deletes_what_it_wrote(
    make_exports, sqlite_url, moto_endpoint
):
    exports = make_exports(sqlite_url, moto_endpoint, export_batch_size=5, lease_seconds=1)
    export_id = exports.request()
    import portability.user_exports.run as run_module

    original = run_module._Progress.__call__

    def cancel_midway(self, records):  # the user cancels once some records are written
        if self.records and not getattr(self, "cancelled", False):
            self.cancelled = True
            with exports.runtime.sessions.begin() as session:
                lifecycle.cancel_export(session, export_id, user_id=None, now=utcnow())
            self.interval = 0
        original(self, records)

    run_module._Progress.__call__ = cancel_midway
    try:
        assert exports.run(export_id).status == "cancelled"
    finally:
        run_module._Progress.__call__ = original
    assert exports.object_keys() == []


def test_deleting_a_ready_export_deletes_its_archive(exports):
    export_id = exports.request()
    exports.run(export_id)
    assert exports.object_keys() != []
    with exports.runtime.sessions.begin() as session:
        keys = lifecycle.delete_export(session, export_id, user_id=exports.user_id, now=utcnow())
    from portability.user_exports import discard_archive, open_export_bucket

    discard_archive(open_export_bucket(exports.settings), export_id, keys)
    assert (exports.object_keys(), exports.row(export_id).status) == ([], "deleted")


def test_expiry_deletes_the_archive_and_marks_the_export_expired(exports):
    export_id = exports.request()
    exports.run(export_id)
    expires_at = exports.row(export_id).expires_at
    assert expires_at is not None and exports.object_keys() != []

    early = user_export_housekeeping(
        exports.settings,
        exports.runtime.sessions,
        lambda ids: None,
        now=expires_at - timedelta(seconds=1),
    )
    assert early.expired == [] and exports.object_keys() != []
    late = user_export_housekeeping(
        exports.settings, exports.runtime.sessions, lambda ids: None, now=expires_at
    )
    assert (late.expired, exports.object_keys(), exports.row(export_id).status) == (
        [export_id],
        [],
        "expired",
    )
    with pytest.raises(ConflictError, match="expired: download links exist only while"):
        exports.volumes(export_id)


def test_housekeeping_publishes_each_queued_export_once_and_again_when_the_message_was_lost(
    exports,
):
    export_id = exports.request()
    published: list[int] = []
    now = utcnow()
    user_export_housekeeping(exports.settings, exports.runtime.sessions, published.extend, now=now)
    user_export_housekeeping(exports.settings, exports.runtime.sessions, published.extend, now=now)
    assert published == [export_id]
    later = now + timedelta(seconds=exports.settings.reconcile_after_seconds + 1)
    user_export_housekeeping(
        exports.settings, exports.runtime.sessions, published.extend, now=later
    )
    assert published == [export_id, export_id]


def test_a_retried_export_with_fewer_volumes_leaves_no_stale_volume(exports):
    export_id = exports.request()
    bucket = exports.settings.user_export_bucket
    stale = f"user-exports/{export_id}/your-data-9.zip"  # an earlier attempt's
    exports.endpoint.client.put_object(Bucket=bucket, Key=stale, Body=b"old")
    exports.run(export_id)
    stored = exports.object_keys()
    assert stale not in stored and stored == exports.row(export_id).object_keys


def test_requests_are_refused_while_no_export_bucket_is_set(exports):
    unset = exports.settings.model_copy(update={"user_export_bucket": None})
    with (
        exports.runtime.sessions.begin() as session,
        pytest.raises(ConfigurationError, match="PORTABILITY_USER_EXPORT_BUCKET"),
    ):
        lifecycle.request_export(
            session, unset, user_id=exports.user_id, categories="all", now=utcnow()
        )


def test_a_worker_whose_export_was_taken_over_stops_without_deleting_the_new_attempts_volumes(
    exports,
):
    export_id = exports.request()
    now = utcnow()
    with exports.runtime.sessions.begin() as session:
        assert lifecycle.claim_export(session, export_id, now=now, lease=0.001)
    later = now + timedelta(seconds=1)
    with exports.runtime.sessions.begin() as session:  # the lease lapsed: a second worker
        assert lifecycle.claim_export(session, export_id, now=later, lease=60)
        assert not lifecycle.renew_export(
            session, export_id, attempt=1, progress=10, now=later, lease=60
        )
        assert lifecycle.renew_export(
            session, export_id, attempt=2, progress=10, now=later, lease=60
        )


def test_a_user_deleting_their_account_has_their_archives_deleted_at_the_next_pass(exports):
    ready = exports.request()
    exports.run(ready)
    queued = exports.request()
    assert exports.object_keys() != []
    with exports.runtime.sessions.begin() as session:
        delete_user(session, user_id=exports.user_id)

    assert exports.row(queued).status == "cancelled"

    swept = user_export_housekeeping(
        exports.settings, exports.runtime.sessions, lambda ids: None, now=utcnow()
    )

    assert (swept.expired, exports.object_keys(), exports.row(ready).status) == (
        [ready],
        [],
        "expired",
    )
    with pytest.raises(NotFoundError), exports.runtime.sessions.begin() as session:
        lifecycle.request_export(
            session, exports.settings, user_id=exports.user_id, categories="all", now=utcnow()
        )
