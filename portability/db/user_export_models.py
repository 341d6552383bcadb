"""The ``user_exports`` table: one row per "download your data" request.

A user export is a one-time run of its own kind: no grant, no app, no stream. Its status moves
only by guarded transitions (``UPDATE ... WHERE status IN (...)``, see ``lifecycle``):

    queued -> running -> ready -> expired | deleted
       |         |-> failed | cancelled | deleted
       |-> cancelled | deleted

At most one export per user is ``queued`` or ``running``: a partial unique index holds that
under concurrency on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from portability.categories import Category, parse_categories
from portability.db.base import Base, UTCDateTime, utcnow

__all__ = ["ACTIVE", "ExportFormat", "ExportStatus", "RequestedBy", "UserExport"]


class ExportStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DELETED = "deleted"


#: The statuses of an export in progress: one per user at most.
ACTIVE = (ExportStatus.QUEUED, ExportStatus.RUNNING)
_ACTIVE_SQL = "status IN ('queued', 'running')"


class ExportFormat(StrEnum):
    JSON = "json"
    TEXT = "text"


class RequestedBy(StrEnum):
    USER = "user"
    SUPPORT = "support"


class UserExport(Base):
    __tablename__ = "user_exports"
    __table_args__ = (
        Index(
            "uq_user_exports_in_progress",
            "user_id",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index("ix_user_exports_user_id_created_at", "user_id", "created_at"),
        Index(
            "ix_user_exports_ready_expires_at",
            "expires_at",
            postgresql_where=text("status = 'ready'"),
            sqlite_where=text("status = 'ready'"),
        ),
        Index(
            "ix_user_exports_queued",
            "created_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), ForeignKey("platform_users.id"))
    #: Comma-separated categories, in the order of ``Category``.
    categories: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(8), default=ExportFormat.JSON.value)
    status: Mapped[str] = mapped_column(String(16), default=ExportStatus.QUEUED.value)
    #: Records written so far (updated while it runs).
    progress: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Records in the finished archive (every category).
    records: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    volumes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: The volumes' object keys and SHA-256s (of the stored ZIP bytes), in volume order.
    object_keys: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    sha256s: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(16), default=RequestedBy.USER.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When "export N is due" was last published (the dispatcher re-publishes a lost one).
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: A running export's worker renews this; past it another worker may take the export over.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: A ready archive is deleted at this moment (retention).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def category_list(self) -> list[Category]:
        chosen = parse_categories(self.categories)
        return [c for c in Category if c in chosen]

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return {c.key: getattr(self, str(c.key)) for c in self.__table__.columns}
