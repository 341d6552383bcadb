"""Staff review of apps: approve, reject, suspend, each with the reviewer's note.

Only an approved app receives data. Suspending (or rejecting) disables the app's schedules;
its running exports stop at their next consent check (the engine re-reads the app's status
between batches) and its queued runs fail that check when a worker takes them. Every
decision is written to the audit log in the same transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from portability.audit import record, snapshot
from portability.db.base import check_id
from portability.db.models import App, AppStatus
from portability.errors import ConflictError, ValidationError
from portability.registry import set_app_status

__all__ = ["TRANSITIONS", "review_app"]

#: Which decision may follow which status.
TRANSITIONS: dict[AppStatus, frozenset[AppStatus]] = {
    AppStatus.APPROVED: frozenset({AppStatus.PENDING, AppStatus.SUSPENDED, AppStatus.REJECTED}),
    AppStatus.REJECTED: frozenset({AppStatus.PENDING, AppStatus.SUSPENDED}),
    AppStatus.SUSPENDED: frozenset({AppStatus.APPROVED}),
}


def review_app(
    session: Session,
    app_id: int,
    decision: AppStatus,
    *,
    actor: str,
    note: str | None = None,
    command: str | None = None,
) -> App:
    """Move app ``app_id`` to ``decision`` (approved, rejected or suspended) and audit it.

    ``ConflictError`` when the app's current status does not allow the decision (approving
    an approved app, suspending a pending one); rejecting or suspending needs a note.
    """
    if decision not in TRANSITIONS:
        raise ValidationError(f"decision {decision!r} must be approved, rejected or suspended")
    if decision is not AppStatus.APPROVED and not (note and note.strip()):
        raise ValidationError(f"--note is required to mark an app {decision.value}: say why")
    app = session.get(App, check_id(app_id, "app id"))
    if app is not None and AppStatus(app.status) not in TRANSITIONS[decision]:
        raise ConflictError(f"app {app.id} is {app.status}: it cannot become {decision.value}")
    before = snapshot(app)
    app = set_app_status(session, app_id, decision)
    record(
        session,
        actor=actor,
        command=command or f"apps {decision.value}",
        object_type="app",
        object_id=app.id,
        before=before,
        after=snapshot(app),
        note=note,
    )
    return app
