"""Fast seeded draws for the seeder: one ``Random`` per user, read by arithmetic on ``random()``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

__all__ = ["Dice"]

_T = TypeVar("_T")


class Dice:
    """Draws from one seeded ``Random`` by arithmetic on ``random()``.

    ``randrange``/``choice``/``choices`` cost about a microsecond each; a million records need
    tens of millions of draws. The order of draws is part of the seed's output: the same calls
    in the same order give the same bytes.
    """

    __slots__ = ("rng", "uniform")

    def __init__(self, seed: str) -> None:
        self.rng = random.Random(seed)
        self.uniform = self.rng.random

    def below(self, n: int) -> int:
        return int(self.uniform() * n)

    def between(self, low: int, high: int) -> int:
        return low + int(self.uniform() * (high - low))

    def pick(self, items: Sequence[_T]) -> _T:
        return items[int(self.uniform() * len(items))]

    def chance(self, probability: float) -> bool:
        return self.uniform() < probability
