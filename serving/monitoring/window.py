"""A sliding window of tallies: fixed-width time buckets, older ones weighing less.

The window is cut into ``buckets`` slices of ``window / buckets`` seconds. New data goes
into the current slice; a slice older than the window is dropped. When the slices are
combined, a slice's weight halves every quarter window, so the figures follow recent
traffic without jumping when a slice falls out. Memory: one tally per slice per model,
each a fixed number of floats per column.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from satchel.monitoring import Profile, Tally


@dataclass
class Window:
    """Tallies of one model over the last ``seconds``.

    Attributes:
        profile: the model's reference profile (None: raw figures only).
        seconds: the window's length.
        buckets: how many slices it is cut into.
    """

    profile: Profile | None
    seconds: float = 3600.0
    buckets: int = 12
    slices: dict[int, Tally] = field(default_factory=dict)

    @property
    def width(self) -> float:
        return self.seconds / self.buckets

    def slot(self, now: float) -> int:
        return int(now // self.width)

    def current(self, now: float) -> Tally:
        """The slice that data arriving at ``now`` is counted into."""
        slot = self.slot(now)
        tally = self.slices.get(slot)
        if tally is None:
            tally = self.slices[slot] = Tally(self.profile)
            self.expire(now)
        return tally

    def expire(self, now: float) -> None:
        oldest = self.slot(now) - self.buckets + 1
        for slot in [s for s in self.slices if s < oldest]:
            del self.slices[slot]

    def combined(self, now: float) -> Tally:
        """All live slices summed, each weighted by its age."""
        self.expire(now)
        return combine(self.profile, self.slices, self.slot(now), self.buckets)

    def to_dict(self) -> dict[str, Any]:
        return {str(slot): t.to_dict() for slot, t in self.slices.items()}


def combine(profile: Profile | None, slices: dict[int, Tally], now_slot: int,
            buckets: int) -> Tally:
    """Sum slices into one tally; a slice ``age`` slots old weighs 0.5 ** (age / (buckets/4))."""
    half_life = max(buckets / 4.0, 1.0)
    out = Tally(profile)
    for slot, tally in slices.items():
        age = now_slot - slot
        if age < 0 or age >= buckets:
            continue
        weight = math.pow(0.5, age / half_life)
        out.merge(tally if weight == 1.0 else tally.scaled(weight))
    return out
