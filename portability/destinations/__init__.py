"""Where the data goes: the ``Destination`` contract and its implementations."""

from portability.destinations.base import Destination, ObjectInfo, Upload

__all__ = ["Destination", "ObjectInfo", "Upload"]
