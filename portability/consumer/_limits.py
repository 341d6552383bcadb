"""How much the consumer will read from a bucket it does not trust.

Everything in a bucket may have been written by someone other than our exporter, so every
size the consumer acts on is capped before it allocates for it: a manifest, a part's stored
bytes, a part's inflated bytes (absolute and as a ratio of its stored size: a zip bomb), and one
line. The defaults are far above what our exporter writes (parts of 250,000 records, ~30 MB
compressed, ~10x inflation; records of a few KiB) and far below what would exhaust a machine.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "ConsumerLimits", "GiB", "MiB"]

MiB = 1 << 20
GiB = 1 << 30

#: Inflating up to this much is always allowed, whatever the ratio (tiny parts compress well).
RATIO_FLOOR_BYTES = 16 * MiB


@dataclass(frozen=True, slots=True)
class ConsumerLimits:
    """Caps on what one object may make the consumer read or hold, in bytes.

    A manifest or part over a cap is refused like any other object that fails verification:
    its stream stops for this pass with a problem naming the object.
    """

    #: One JSON line of a part, decompressed (our records are a few KiB).
    max_line_bytes: int = 8 * MiB
    #: A part's stored (compressed) size; a part is held whole while it is applied.
    max_part_bytes: int = 512 * MiB
    #: A part's decompressed size.
    max_part_inflated_bytes: int = 4 * GiB
    #: Decompressed size / stored size of a part (beyond ``RATIO_FLOOR_BYTES``).
    max_inflation_ratio: int = 200
    #: A manifest object (a manifest of 10,000 parts is ~3 MiB).
    max_manifest_bytes: int = 16 * MiB

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 1:
                raise ValueError(f"consumer limit {name} must be at least 1")

    def inflated_cap(self, stored_bytes: int) -> int:
        """The most a part of ``stored_bytes`` may inflate to."""
        by_ratio = max(stored_bytes * self.max_inflation_ratio, RATIO_FLOOR_BYTES)
        return min(self.max_part_inflated_bytes, by_ratio)


DEFAULT_LIMITS = ConsumerLimits()
