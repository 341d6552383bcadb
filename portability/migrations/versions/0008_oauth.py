"""oauth: registered redirect URIs and hashed single-use authorization codes (consent flow)

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-07 10:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import portability.db.base

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = portability.db.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "oauth_redirect_uris",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("uri", sa.String(length=2000), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"], ["apps.id"], name=op.f("fk_oauth_redirect_uris_app_id_apps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_redirect_uris")),
        sa.UniqueConstraint("app_id", "uri", name=op.f("uq_oauth_redirect_uris_app_id")),
    )
    op.create_index(
        op.f("ix_oauth_redirect_uris_app_id"), "oauth_redirect_uris", ["app_id"], unique=False
    )
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.Integer(), nullable=False),
        sa.Column("authorization_id", sa.Integer(), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("issued_at", _TIME, nullable=False),
        sa.Column("expires_at", _TIME, nullable=False),
        sa.Column("redeemed_at", _TIME, nullable=True),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"], name=op.f("fk_oauth_codes_app_id_apps")),
        sa.ForeignKeyConstraint(
            ["authorization_id"],
            ["authorizations.id"],
            name=op.f("fk_oauth_codes_authorization_id_authorizations"),
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_oauth_codes")),
    )
    op.create_index(op.f("ix_oauth_codes_app_id"), "oauth_codes", ["app_id"], unique=False)
    op.create_index(
        op.f("ix_oauth_codes_authorization_id"), "oauth_codes", ["authorization_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("oauth_codes")
    op.drop_table("oauth_redirect_uris")
