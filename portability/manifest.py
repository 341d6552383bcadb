"""Object keys and the manifest: the contract between the export engine and every consumer.

Layout under a destination's prefix (``{p}`` = ``prefix/`` or nothing; ``{user}`` is the
user's pseudonym for the app, never the platform's id)::

    {p}{user}/{category}/g{grant}/parts/{range}/part-{n:05d}.jsonl.gz
    {p}{user}/{category}/g{grant}/manifests/{sequence:010d}.json

A stream is one (grant, destination, category); two destinations whose objects could collide
are refused at registration, so the folder needs no destination in it. ``{range}`` is 16 hex
digits naming the delivery's (from, to) positions (``range_digest``): a part's key is a pure
function of what it holds, so a retried run rewrites the same bytes under the same keys. Only
manifested parts count; the manifest is written last (conditionally, ``If-None-Match: *``) and
manifests of a stream are numbered 1, 2, 3... with each ``position.from`` equal to the previous
``position.to`` -- unless ``reset`` is true, which means "this manifest holds the whole current
state of this user and category: replace what you hold". Positions are opaque text.
"""

from __future__ import annotations

import builtins
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from portability.records import SCHEMA_VERSION
from portability.sources.position import Position, range_digest

__all__ = [
    "Manifest",
    "ManifestSignature",
    "PartEntry",
    "PositionRange",
    "manifest_key",
    "part_key",
    "part_suffix",
    "stream_prefix",
]

_SUFFIX = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", "none": ".jsonl"}


def part_suffix(compression: str) -> str:
    return _SUFFIX[compression]


def stream_prefix(prefix: str, user: str, category: str, authorization_id: int) -> str:
    """The folder of one stream; ``user`` is the user's pseudonym for the app."""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{user}/{category}/g{authorization_id}/"


def part_key(
    stream: str, start: Position | None, end: Position, index: int, compression: str
) -> str:
    digest = range_digest(start, end)
    return f"{stream}parts/{digest}/part-{index:05d}{part_suffix(compression)}"


def manifest_key(stream: str, sequence: int) -> str:
    return f"{stream}manifests/{sequence:010d}.json"


class PartEntry(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    records: int = Field(ge=0)
    upserts: int = Field(ge=0)
    deletes: int = Field(ge=0)
    bytes: int = Field(ge=0, description="Size of the stored (compressed) object.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Of the stored bytes.")


class PositionRange(BaseModel):
    """The feed positions a delivery covers; ``from`` is null for a replay."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    from_: str | None = Field(alias="from")
    to: str


class ManifestSignature(BaseModel):
    """Ed25519 over the manifest without this member, keys sorted (``portability.signing``)."""

    model_config = ConfigDict(frozen=True)

    alg: str
    key_id: str
    value: str = Field(description="Base64 of the 64-byte signature.")


class Manifest(BaseModel):
    """Everything a consumer needs to verify and apply one delivery of one stream."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    kind: str = "portability.manifest"
    schema_version: int = SCHEMA_VERSION
    run_id: int
    app_id: int
    authorization_id: int
    user: str = Field(description="The user's pseudonym for this app.")
    category: str
    categories: list[str] = Field(description="Every category the run delivered.")
    sequence: int = Field(ge=1)
    position: PositionRange
    reset: bool = False
    replay_reason: str | None = Field(
        default=None,
        description="Why a reset replays the stream: first_delivery, lost_history, requested "
        "or behind_retention.",
    )
    compression: str
    parts: list[PartEntry]
    records: int = Field(ge=0)
    bytes: int = Field(ge=0)
    started_at: datetime
    created_at: datetime
    signature: ManifestSignature | None = Field(
        default=None, description="Set by portability.signing.sign_manifest; null when unsigned."
    )

    def to_json(self) -> builtins.bytes:
        return self.model_dump_json(by_alias=True, indent=2).encode()

    @classmethod
    def from_json(cls, data: builtins.bytes) -> Manifest:
        return cls.model_validate_json(data)

    def same_delivery(self, other: Manifest) -> bool:
        """Whether two manifests describe the same parts for the same range (timestamps aside)."""
        return (
            self.sequence == other.sequence
            and self.position == other.position
            and self.parts == other.parts
        )
