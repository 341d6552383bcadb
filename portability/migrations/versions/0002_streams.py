"""streams: one position per (grant, destination, category); snapshot positions; state lines

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 09:40:00

Checkpoints were kept per (grant, category) with an integer watermark. They become streams,
one per (grant, destination, category), whose position is a feed snapshot. The object layout
changes with them (pseudonymous user folders, parts named by a digest of their range), so no
checkpoint carries over: every stream's next delivery is a full replay of the current state,
which a consumer applies as a reset. Current-state rows gain the line they were last delivered
as (back-filled from the feed), which is what a replay reads.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portability.db.base

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATE = {
    "platform_profiles": ("profile", "user_id"),
    "platform_posts": ("posts", "id"),
    "platform_activity": ("activity", "id"),
    "platform_messages": ("direct_messages", "id"),
}


def upgrade() -> None:
    op.drop_table("checkpoints")
    op.create_table(
        "streams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("authorization_id", sa.Integer(), nullable=False),
        sa.Column("destination_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Text(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("planned_sequence", sa.Integer(), nullable=False),
        sa.Column("replay_reason", sa.String(length=32), nullable=True),
        sa.Column("last_manifest_key", sa.String(length=1024), nullable=True),
        sa.Column("last_manifest_sha256", sa.String(length=64), nullable=True),
        sa.Column(
            "last_delivered_at", portability.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("lease_run_id", sa.Integer(), nullable=True),
        sa.Column(
            "lease_expires_at", portability.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updated_at", portability.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["authorizations.id"],
            name=op.f("fk_streams_authorization_id_authorizations"),
        ),
        sa.ForeignKeyConstraint(
            ["destination_id"],
            ["destinations.id"],
            name=op.f("fk_streams_destination_id_destinations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_streams")),
        sa.UniqueConstraint(
            "authorization_id",
            "destination_id",
            "category",
            name=op.f("uq_streams_authorization_id"),
        ),
    )
    with op.batch_alter_table("streams", schema=None) as batch_op:
        batch_op.create_index("ix_streams_authorization_id", ["authorization_id"], unique=False)
        batch_op.create_index("ix_streams_destination_id", ["destination_id"], unique=False)
        batch_op.create_index("ix_streams_lease_run_id", ["lease_run_id"], unique=False)

    op.create_table(
        "feed_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("taken_at", portability.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("snapshot_xmin", sa.BigInteger(), nullable=False),
        sa.Column("is_horizon", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feed_marks")),
    )
    with op.batch_alter_table("feed_marks", schema=None) as batch_op:
        batch_op.create_index("ix_feed_marks_taken_at", ["taken_at"], unique=False)

    with op.batch_alter_table("run_categories", schema=None) as batch_op:
        batch_op.drop_column("from_watermark")
        batch_op.drop_column("to_watermark")
        batch_op.drop_column("is_reset")
        batch_op.add_column(sa.Column("from_position", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("to_position", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("replay_reason", sa.String(length=32), nullable=True))

    with op.batch_alter_table("platform_changes", schema=None) as batch_op:
        batch_op.create_index("ix_platform_changes_txid", ["txid"], unique=False)

    for table, (category, key) in _STATE.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("line", sa.Text(), nullable=False, server_default=""))
        # The latest upsert line of each current record (the feed orders a record's changes).
        op.execute(
            f"UPDATE {table} SET line = COALESCE((SELECT c.line FROM platform_changes c"
            f" WHERE c.user_id = {table}.user_id AND c.category = '{category}'"
            f" AND c.record_id = {table}.{key} AND c.op = 'upsert'"
            " ORDER BY c.txid DESC, c.position DESC LIMIT 1), '')"
        )


def downgrade() -> None:
    for table in _STATE:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("line")
    with op.batch_alter_table("platform_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_platform_changes_txid")
    with op.batch_alter_table("run_categories", schema=None) as batch_op:
        batch_op.drop_column("replay_reason")
        batch_op.drop_column("to_position")
        batch_op.drop_column("from_position")
        batch_op.add_column(sa.Column("from_watermark", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("to_watermark", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column("is_reset", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.drop_table("feed_marks")
    op.drop_table("streams")
    op.create_table(
        "checkpoints",
        sa.Column("authorization_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("planned_sequence", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("is_reset_pending", sa.Boolean(), nullable=False),
        sa.Column("lease_run_id", sa.Integer(), nullable=True),
        sa.Column(
            "lease_expires_at", portability.db.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("updated_at", portability.db.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["authorizations.id"],
            name=op.f("fk_checkpoints_authorization_id_authorizations"),
        ),
        sa.PrimaryKeyConstraint("authorization_id", "category", name=op.f("pk_checkpoints")),
    )
