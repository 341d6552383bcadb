"""``portability doctor``: is this installation able to deliver? Each problem names its fix."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TypeVar

import typer
from sqlalchemy import Engine, func, select, text

from portability.backlog import delivery_lag, due_backlog
from portability.cli import _context
from portability.cli._errors import EXIT_FAILED
from portability.cli._output import print_json, print_table
from portability.cli._params import JSON, parse_duration
from portability.db.base import utcnow
from portability.db.diagnose import safe_url, translate
from portability.db.migrate import current_revision, head_revision
from portability.db.models import Run, RunStatus
from portability.errors import PortabilityError
from portability.settings import Settings

__all__ = ["register"]

_T = TypeVar("_T")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def _check_duration(value: str) -> str:
    parse_duration(value)  # a usage error before any check runs
    return value


def doctor_cmd(
    timeout: float = typer.Option(2.0, "--timeout", min=0.1, help="Seconds per network check."),
    max_lag: str = typer.Option(
        "26h",
        "--max-lag",
        help="How long an ongoing stream may go without being current (30m, 26h, 2d).",
        callback=_check_duration,
    ),
    as_json: bool = JSON,
) -> None:
    """Check settings, database, schema revision, broker, live workers, clock skew, feed lag
    and stuck runs.

    Exits 1 if any check finds a problem. Example: portability doctor --timeout 1 --max-lag 2d
    """
    checks: list[Check] = []
    settings = _run(checks, "settings", _settings)
    if settings is not None:
        database_ok = _run(checks, "database", lambda: _database(settings))
        if database_ok:
            schema_ok = _run(checks, "schema", lambda: _schema(settings))
            if schema_ok:
                _run(checks, "stuck runs", lambda: _stuck_runs(settings))
                _run(checks, "feed lag", lambda: _feed_lag(settings, parse_duration(max_lag)))
            _run(checks, "clock", _clock)
        broker_ok = _run(checks, "broker", lambda: _broker(settings, timeout))
        if broker_ok:
            _run(checks, "workers", lambda: _workers(settings, timeout))
    rows = [asdict(c) for c in checks]
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            row["result"] = "ok" if row["ok"] else "PROBLEM"
        print_table(rows, ["name", "result", "detail"], whole=["detail"])
    if not all(c.ok for c in checks):
        raise typer.Exit(EXIT_FAILED)


def _run(checks: list[Check], name: str, check: Callable[[], tuple[_T, str]]) -> _T | None:
    try:
        value, detail = check()
    except PortabilityError as exc:
        checks.append(Check(name, False, str(exc)))
        return None
    except Exception as exc:
        url = _context.STATE.database_url
        known = translate(exc, url) if url else None
        checks.append(Check(name, False, str(known or f"{type(exc).__name__}: {exc}")))
        return None
    checks.append(Check(name, True, detail))
    return value


def _settings() -> tuple[Settings, str]:
    settings = _context.load_settings()
    key = (
        "from PORTABILITY_ENCRYPTION_KEY"
        if settings.encryption_key
        else (
            f"from the key file in {settings.data_dir} "
            "(set PORTABILITY_ENCRYPTION_KEY in production)"
        )
    )
    return settings, f"data dir {settings.data_dir.resolve()}; credential key {key}"


def _database(settings: Settings) -> tuple[bool, str]:
    with _context.engine().connect() as connection:
        connection.execute(text("SELECT 1"))
    return True, f"connected to {safe_url(settings.resolved_database_url)}"


def _schema(_settings: Settings) -> tuple[bool, str]:
    current, head = current_revision(_context.engine()), head_revision()
    if current != head:
        raise PortabilityError(
            f"the database is at revision {current or 'none (never migrated)'}, the code "
            f"expects {head}: run `portability db upgrade`"
        )
    return True, f"at revision {head} (head)"


#: Seconds this host's clock may differ from the database's before leases and schedules drift.
MAX_CLOCK_SKEW = 2.0


def _clock() -> tuple[bool, str]:
    engine = _context.engine()
    if engine.dialect.name != "postgresql":
        return True, "not checked: an embedded database shares this host's clock"
    with engine.connect() as connection:
        before = utcnow()
        database_now = connection.execute(text("SELECT clock_timestamp()")).scalar_one()
        after = utcnow()
    skew = (database_now - (before + (after - before) / 2)).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW:
        raise PortabilityError(
            f"this host's clock is {skew:+.1f} s off the database's: leases and schedules "
            "depend on both; fix time synchronisation (NTP) on the host that is wrong"
        )
    return True, f"{skew:+.2f} s off the database's"


def _stuck_runs(settings: Settings) -> tuple[bool, str]:
    now = utcnow()
    cutoff = now - timedelta(seconds=2 * settings.reconcile_after_seconds)
    with _context.sessions()() as session:
        queued = (
            session.scalar(
                select(func.count()).where(
                    Run.status == RunStatus.QUEUED.value,
                    Run.queued_at < cutoff,
                    Run.not_before.is_(None) | (Run.not_before < cutoff),
                )
            )
            or 0
        )
        lapsed = (
            session.scalar(
                select(func.count()).where(
                    Run.status == RunStatus.RUNNING.value, Run.lease_expires_at < cutoff
                )
            )
            or 0
        )
    if queued or lapsed:
        raise PortabilityError(
            f"{queued} run(s) queued and {lapsed} running with a lapsed lease for more than "
            f"{2 * settings.reconcile_after_seconds} s: start workers (`make worker`) and a "
            "scheduler (`portability scheduler run` or `make beat`), whose reconciler re-sends "
            "them; list them with `portability runs list --status queued --status running`"
        )
    return True, "no run waits longer than it should"


def _feed_lag(settings: Settings, max_lag: timedelta) -> tuple[bool, str]:
    """The furthest-behind ongoing stream, the schedules left unclaimed, and (PostgreSQL) the
    oldest open transaction, which holds back the feed's retention but never a delivery."""
    engine = _context.engine()
    lag = delivery_lag(engine)
    unclaimed = due_backlog(
        engine, utcnow() - timedelta(seconds=2 * settings.reconcile_after_seconds)
    )
    if unclaimed:
        raise PortabilityError(
            f"{unclaimed} schedule(s) were due more than {2 * settings.reconcile_after_seconds} s "
            "ago and are still unclaimed: start a scheduler (`portability scheduler run` or "
            "`make beat`) and check its log"
        )
    if lag.seconds > max_lag.total_seconds():
        raise PortabilityError(
            f"the stream of grant {lag.authorization_id} ({lag.category}) was last current "
            f"{_hours(lag.seconds)} ago and has {lag.changes} change(s) it has not delivered: "
            f"see `portability streams list --grant {lag.authorization_id}` and "
            "`portability runs list --status failed`; a paused or failing schedule keeps it behind"
        )
    detail = (
        f"the furthest-behind ongoing stream was current {_hours(lag.seconds)} ago "
        f"({lag.changes} change(s) behind)"
        if lag.authorization_id is not None
        else "no ongoing stream"
    )
    oldest = _oldest_transaction(engine)
    if oldest is not None:
        detail += f"; the server's oldest open transaction began {_hours(oldest)} ago"
    return True, detail


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _oldest_transaction(engine: Engine) -> float | None:
    """Age in seconds of the oldest transaction holding a snapshot on the server."""
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as connection:
        age = connection.execute(
            text(
                "SELECT EXTRACT(EPOCH FROM clock_timestamp() - min(xact_start)) "
                "FROM pg_stat_activity WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()"
            )
        ).scalar()
    return None if age is None else float(age)


def _broker(settings: Settings, timeout: float) -> tuple[bool, str]:
    from workers.health import check_broker

    check_broker(settings, timeout=timeout)
    return True, "reachable"


def _workers(settings: Settings, timeout: float) -> tuple[bool, str]:
    if settings.resolved_broker_url.startswith("filesystem"):
        return True, "not checked: the embedded filesystem broker cannot ping workers"
    from workers.health import ping_workers

    names = ping_workers(settings, timeout=timeout)
    if not names:
        raise PortabilityError(
            f"no worker answered a ping within {timeout:g} s: start one with `make worker` "
            "(celery -A workers worker)"
        )
    return True, f"{len(names)} answered: {', '.join(names)}"


def register(root: typer.Typer) -> None:
    root.command("doctor")(doctor_cmd)
