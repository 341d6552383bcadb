"""A run's attempt history: every attempt's start, end, outcome and error, kept by the
statements that move the run, read back in plain words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from portability.attempts import NO_END_RECORDED, end_line, parse_attempts, start_line

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_retried_then_failed_run_has_two_attempts_with_their_errors():
    log = (
        start_line(T0)
        + end_line(T0 + timedelta(seconds=3), "queued", reason="destination_transient", error="503")
        + start_line(T0 + timedelta(seconds=10))
        + end_line(
            T0 + timedelta(seconds=11), "failed", reason="destination_permanent", error="denied"
        )
    )

    attempts = parse_attempts(log)

    assert [(a.number, a.outcome, a.reason, a.error) for a in attempts] == [
        (1, "queued", "destination_transient", "503"),
        (2, "failed", "destination_permanent", "denied"),
    ]
    assert attempts[1].started_at == "2026-12-07T09:00:10+00:00"
    assert attempts[1].ended_at == "2026-12-07T09:00:11+00:00"


def test_an_attempt_followed_by_another_start_ended_without_a_record():
    log = start_line(T0) + start_line(T0 + timedelta(seconds=40))

    first, second = parse_attempts(log)

    assert (first.outcome, first.ended_at, first.error) == ("lapsed", None, NO_END_RECORDED)
    assert (second.number, second.outcome) == (2, None)  # still running


def test_an_end_without_an_open_attempt_is_ignored():
    """Cancelling a queued run records an end, but no attempt was running."""
    log = end_line(T0, "cancelled", error="by support")

    assert parse_attempts(log) == []


def test_long_errors_are_clipped_and_a_damaged_line_hides_nothing_else():
    log = start_line(T0) + "{not json\n" + end_line(T0, "failed", error="x" * 5000)

    [attempt] = parse_attempts(log)

    assert attempt.outcome == "failed"
    assert attempt.error is not None and len(attempt.error) == 500
