"""Where the changes come from: the ``Source`` contract and its implementations."""

from portability.sources.base import ChangeBatch, Source

__all__ = ["ChangeBatch", "Source"]
