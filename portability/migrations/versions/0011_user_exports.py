"""user_exports: "download your data" requests and their archives

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from portability.db.base import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = sa.text("status IN ('queued', 'running')")
_READY = sa.text("status = 'ready'")
_QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_table(
        "user_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.BigInteger(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("volumes", sa.Integer(), nullable=True),
        sa.Column("object_keys", sa.JSON(), nullable=True),
        sa.Column("sha256s", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("enqueued_at", UTCDateTime(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["platform_users.id"], name="fk_user_exports_user_id_platform_users"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_user_exports"),
    )
    op.create_index(
        "uq_user_exports_in_progress",
        "user_exports",
        ["user_id"],
        unique=True,
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )
    op.create_index("ix_user_exports_user_id_created_at", "user_exports", ["user_id", "created_at"])
    op.create_index(
        "ix_user_exports_ready_expires_at",
        "user_exports",
        ["expires_at"],
        postgresql_where=_READY,
        sqlite_where=_READY,
    )
    op.create_index(
        "ix_user_exports_queued",
        "user_exports",
        ["created_at"],
        postgresql_where=_QUEUED,
        sqlite_where=_QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_user_exports_queued", table_name="user_exports")
    op.drop_index("ix_user_exports_ready_expires_at", table_name="user_exports")
    op.drop_index("ix_user_exports_user_id_created_at", table_name="user_exports")
    op.drop_index("uq_user_exports_in_progress", table_name="user_exports")
    op.drop_table("user_exports")
