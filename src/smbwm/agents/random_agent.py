"""Random play: uniform over an action set, and the NOOP-balanced variant of DIAMOND_SuperMario."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from smbwm.agents.base import Agent, HeldActions


class RandomAgent(Agent):
    name = "random"

    def __init__(self, action_set: str | Sequence[int] = "simple", hold: int | Sequence[int] = (1, 6),
                 seed: int | None = None):
        super().__init__(action_set, seed)
        self.hold = HeldActions(hold)

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.hold.clear()

    def _act(self, observation, info) -> int:
        return self.hold.next(self.rng, lambda: self.actions[self.rng.integers(len(self.actions))])


class BalancedAgent(RandomAgent):
    """Random play whose action histogram is kept within [min_share, max_share] of uniform.

    Uniform random play over SIMPLE_MOVEMENT is dominated by "right" variants and Mario rarely stands
    still or walks back, so a model never learns NOOP/left. Here an action whose share falls below
    `min_share / n` is forced for a burst of `burst` steps, and one above `max_share / n` is not drawn
    until it falls back. `histogram()` reports the achieved shares.
    """

    name = "balanced"

    def __init__(self, action_set: str | Sequence[int] = "simple", hold: int | Sequence[int] = (1, 6),
                 min_share: float = 0.5, max_share: float = 2.0, burst: int | Sequence[int] = (4, 10),
                 warmup: int = 50, seed: int | None = None):
        super().__init__(action_set, hold, seed)
        if not 0 <= min_share <= 1 <= max_share:
            raise ValueError(f"need 0 <= min_share <= 1 <= max_share, got {min_share}, {max_share}")
        self.min_share, self.max_share, self.warmup = min_share, max_share, warmup
        self.burst = HeldActions(burst)
        self.forced = 0

    def _shares(self) -> np.ndarray:
        counts = np.array([self.counts[a] for a in self.actions], dtype=np.float64)
        return counts / max(counts.sum(), 1.0) * len(self.actions)  # 1.0 == fair share

    def _act(self, observation, info: dict[str, Any]) -> int:
        if self.burst.left > 0:
            return self.burst.next(self.rng, lambda: self.burst.current)
        total = sum(self.counts[a] for a in self.actions)
        if total >= self.warmup:
            shares = self._shares()
            under = np.flatnonzero(shares < self.min_share)
            if len(under):
                a = self.actions[int(self.rng.choice(under))]
                self.forced += 1
                self.hold.clear()
                self.burst.left = 0
                return self.burst.next(self.rng, lambda: a)
            allowed = [a for a, s in zip(self.actions, shares) if s <= self.max_share]
        else:
            allowed = self.actions
        return self.hold.next(self.rng, lambda: allowed[self.rng.integers(len(allowed))])

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "forced_bursts": self.forced}
