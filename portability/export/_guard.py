"""What keeps a running export honest: consent re-read before every write, and a heartbeat.

* ``ConsentGuard`` re-reads the grant, its user and the app (one autocommit query) before every
  batch and every object write, and raises ``ConsentError`` the moment consent is gone. The
  manifest, which makes a delivery visible, is written under ``hold`` instead: a transaction
  that share-locks the grant, app and user rows while the manifest is written, so a revocation
  or a suspension commits either before the check (and nothing is written) or after the
  stream has moved (and the delivery was consented to).
* ``Heartbeat`` renews the run's lease and its streams' leases on a thread, every third of
  the lease, however long a batch or an upload takes. When the run has moved (cancelled,
  taken over) the next guard check raises ``ConflictError``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select

from portability.consent import check_consent
from portability.db.base import utcnow
from portability.db.engine import relax_durability
from portability.db.models import App, Authorization, PlatformUser
from portability.errors import ConflictError, ConsentError
from portability.export import _streams
from portability.runs import renew_lease as renew_run_lease
from portability.runtime import Runtime

__all__ = ["ConsentGuard", "Heartbeat", "RunRef"]

log = logging.getLogger("portability.export")


@dataclass(frozen=True)
class RunRef:
    """What a consent re-check needs to know of its run."""

    run_id: int
    authorization_id: int
    rerun_of: int | None


class Heartbeat:
    """Renews the run's and its streams' leases until stopped (a daemon thread)."""

    def __init__(self, runtime: Runtime, run_id: int) -> None:
        self._runtime = runtime
        self._run_id = run_id
        self._stop = threading.Event()
        self.lost: str | None = None
        self._thread = threading.Thread(
            target=self._beat, name=f"portability-heartbeat-{run_id}", daemon=True
        )

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        lease = self._runtime.settings.lease_seconds
        while not self._stop.wait(max(0.5, lease / 3)):
            try:
                with self._runtime.engine.begin() as conn:
                    relax_durability(conn)
                    renew_run_lease(conn, self._run_id, lease_seconds=lease)
                    _streams.renew_leases(conn, self._run_id, lease)
            except ConflictError as exc:
                self.lost = str(exc)
                return
            except Exception as exc:  # a database blip: the next beat tries again
                log.warning("could not renew the lease of run %s: %s", self._run_id, exc)


class ConsentGuard:
    """Consent checks for one run, shared by its streams (thread-safe: no state but reads)."""

    def __init__(self, runtime: Runtime, run: RunRef, heartbeat: Heartbeat | None) -> None:
        self._runtime = runtime
        self._run = run
        self._heartbeat = heartbeat

    def check_within(self, conn: Connection) -> None:
        """Check inside a transaction the caller is opening anyway."""
        self._still_ours()
        _check(conn, self._run, self._runtime.settings.eligible_countries, lock=False)

    def __call__(self) -> None:
        """Check before a batch or an object write (one autocommit round trip)."""
        self._still_ours()
        with self._runtime.autocommit.connect() as conn:
            _check(conn, self._run, self._runtime.settings.eligible_countries, lock=False)

    @contextmanager
    def hold(self) -> Iterator[Connection]:
        """A transaction in which consent was checked and cannot change until it commits."""
        self._still_ours()
        with self._runtime.engine.begin() as conn:
            _check(conn, self._run, self._runtime.settings.eligible_countries, lock=True)
            yield conn

    def _still_ours(self) -> None:
        if self._heartbeat is not None and self._heartbeat.lost is not None:
            raise ConflictError(self._heartbeat.lost)


def _check(conn: Connection, run: RunRef, eligible: frozenset[str], *, lock: bool) -> None:
    """Re-read the grant, its user and the app in one round trip and apply the consent rules."""
    query = _CONSENT_LOCKED if lock and conn.dialect.name == "postgresql" else _CONSENT
    row = conn.execute(query, {"p_authorization": run.authorization_id}).one_or_none()
    if row is None:
        raise ConsentError(f"authorization {run.authorization_id} no longer exists")
    grant = Authorization(
        id=run.authorization_id,
        app_id=row.app_id,
        user_id=row.user_id,
        access=row.access,
        revoked_at=row.revoked_at,
        revoke_reason=row.revoke_reason,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by_run_id=row.used_by_run_id,
    )
    check_consent(
        app=App(id=row.app_id, status=row.status),
        grant=grant,
        user=PlatformUser(id=row.user_id, country=row.country),
        now=utcnow(),
        eligible_countries=eligible,
        single_already_claimed_by_this_run=row.used_by_run_id in {run.run_id, run.rerun_of},
    )


# Built once: it runs before every batch and object write.
_CONSENT = (
    select(
        Authorization.app_id,
        Authorization.user_id,
        Authorization.access,
        Authorization.revoked_at,
        Authorization.revoke_reason,
        Authorization.expires_at,
        Authorization.used_at,
        Authorization.used_by_run_id,
        App.status,
        PlatformUser.country,
    )
    .join(App, App.id == Authorization.app_id)
    .join(PlatformUser, PlatformUser.id == Authorization.user_id)
    .where(Authorization.id == bindparam("p_authorization"))
)
_CONSENT_LOCKED = _CONSENT.with_for_update(read=True)
