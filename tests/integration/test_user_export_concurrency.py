"""One export in progress per user holds under concurrency on PostgreSQL: not only by the
check that reads first, but by the partial unique index, when both requests pass the check."""

from __future__ import annotations

import threading

import pytest

from portability.db.base import utcnow
from portability.errors import ConflictError
from portability.user_exports import lifecycle

pytestmark = pytest.mark.services


def test_two_requests_that_both_pass_the_check_give_one_export_and_one_refusal(
    make_exports, pg_url, moto_endpoint
):
    exports = make_exports(pg_url, moto_endpoint)
    sessions, settings = exports.runtime.sessions, exports.settings
    first = sessions()
    first.begin()
    lifecycle.request_export(
        first, settings, user_id=exports.user_id, categories="all", now=utcnow()
    )  # flushed, not committed: the second request's check cannot see it
    outcome: list[BaseException | int] = []

    def second() -> None:
        try:
            with sessions.begin() as session:
                row = lifecycle.request_export(
                    session, settings, user_id=exports.user_id, categories="posts", now=utcnow()
                )
                outcome.append(row.id)
        except ConflictError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    thread.join(timeout=1.0)
    assert thread.is_alive(), "the second insert must wait on the unique index"
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert len(outcome) == 1 and isinstance(outcome[0], ConflictError)
    assert "one export at a time per user" in str(outcome[0])
