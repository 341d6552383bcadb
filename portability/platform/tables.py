"""Tables of the built-in platform store.

Current state lives in one table per kind of record; every write also appends a row to
``platform_changes``, the ordered change feed the export engine reads. A change row carries the
complete JSON Lines record as it is delivered (``line``), so exporting never re-serialises; a
current-state row carries its latest upsert line too, so a full replay reads the current state
(one line per record) instead of the feed's history.

``txid`` is the writing transaction's id (PostgreSQL ``pg_current_xact_id()``, set by a column
default the migration installs; on SQLite, the single writer, it equals ``position``). Reading
by snapshot positions (``portability.sources.position``) is what keeps late commits from being
skipped without waiting for unrelated transactions.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portability.db.base import Base, BigIntPK, UTCDateTime

__all__ = [
    "PlatformActivity",
    "PlatformChange",
    "PlatformMessage",
    "PlatformPost",
    "PlatformProfile",
]


class PlatformProfile(Base):
    __tablename__ = "platform_profiles"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(200))
    bio: Mapped[str] = mapped_column(Text, default="")
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    birth_date: Mapped[date | None] = mapped_column(Date)
    language: Mapped[str] = mapped_column(String(16), default="en")
    follower_count: Mapped[int] = mapped_column(Integer, default=0)
    following_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    line: Mapped[str] = mapped_column(Text, default="")


class PlatformPost(Base):
    __tablename__ = "platform_posts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    caption: Mapped[str] = mapped_column(Text, default="")
    hashtags: Mapped[str] = mapped_column(Text, default="[]")  # JSON array of strings
    video_url: Mapped[str] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    privacy: Mapped[str] = mapped_column(String(16), default="public")
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    line: Mapped[str] = mapped_column(Text, default="")


class PlatformActivity(Base):
    """Likes, follows, watch history, searches and logins, one event per row."""

    __tablename__ = "platform_activity"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str | None] = mapped_column(String(500))
    detail: Mapped[str] = mapped_column(Text, default="{}")  # JSON object
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    line: Mapped[str] = mapped_column(Text, default="")


class PlatformMessage(Base):
    """A direct message as seen from one user's side of a conversation."""

    __tablename__ = "platform_messages"
    __table_args__ = (Index("ix_platform_messages_user_conv", "user_id", "conversation_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64))
    conversation_id: Mapped[str] = mapped_column(String(64))
    peer_user_id: Mapped[str] = mapped_column(String(64))
    sender_id: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    line: Mapped[str] = mapped_column(Text, default="")


class PlatformChange(Base):
    """One create, update or delete of one record, in feed order."""

    __tablename__ = "platform_changes"
    __table_args__ = (
        Index("ix_platform_changes_feed", "user_id", "category", "txid", "position"),
        # Retention deletes by transaction id, oldest first.
        Index("ix_platform_changes_txid", "txid"),
    )

    position: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    txid: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(64))
    op: Mapped[str] = mapped_column(String(8))  # upsert | delete
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    line: Mapped[str] = mapped_column(Text)
