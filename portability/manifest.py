"""Object keys and the manifest: the contract between the export engine and every consumer.

Layout under a destination's prefix (``{p}`` = ``prefix/`` or nothing)::

    {p}{user}/{category}/g{grant}/parts/{from:020d}-{to:020d}/part-{n:05d}.jsonl.gz
    {p}{user}/{category}/g{grant}/manifests/{sequence:010d}.json

A part's key is a pure function of the watermark range it covers and its index, and a range's
content never changes, so a retried run rewrites the same bytes under the same keys. Only
manifested parts count; the manifest is written last (conditionally, ``If-None-Match: *``) and
manifests of a stream are numbered 1, 2, 3... with each ``checkpoint.from`` equal to the
previous ``checkpoint.to`` -- unless ``reset`` is true, which means "this manifest replays the
stream from the beginning: replace what you hold for this user and category".
"""

from __future__ import annotations

import builtins
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from portability.records import SCHEMA_VERSION

__all__ = [
    "CheckpointRange",
    "Manifest",
    "ManifestSignature",
    "PartEntry",
    "manifest_key",
    "part_key",
    "part_suffix",
    "stream_prefix",
]

_SUFFIX = {"gzip": ".jsonl.gz", "zstd": ".jsonl.zst", "none": ".jsonl"}


def part_suffix(compression: str) -> str:
    return _SUFFIX[compression]


def stream_prefix(prefix: str, user_id: str, category: str, authorization_id: int) -> str:
    """The folder of one grant's stream of one category of one user."""
    head = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{head}{user_id}/{category}/g{authorization_id}/"


def part_key(
    stream: str, from_watermark: int, to_watermark: int, index: int, compression: str
) -> str:
    return (
        f"{stream}parts/{from_watermark:020d}-{to_watermark:020d}/"
        f"part-{index:05d}{part_suffix(compression)}"
    )


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


class CheckpointRange(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    from_: int = Field(alias="from", ge=0)
    to: int = Field(ge=0)


class ManifestSignature(BaseModel):
    """Ed25519 over the manifest without this member, keys sorted (``portability.signing``)."""

    model_config = ConfigDict(frozen=True)

    alg: str
    key_id: str
    value: str = Field(description="Base64 of the 64-byte signature.")


class Manifest(BaseModel):
    """Everything a consumer needs to verify and apply one delivery of one category."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    kind: str = "portability.manifest"
    schema_version: int = SCHEMA_VERSION
    run_id: int
    app_id: int
    authorization_id: int
    user_id: str
    category: str
    categories: list[str] = Field(description="Every category the run delivered.")
    sequence: int = Field(ge=1)
    checkpoint: CheckpointRange
    reset: bool = False
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
            and self.checkpoint == other.checkpoint
            and self.parts == other.parts
        )
