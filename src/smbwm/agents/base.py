"""The agent interface every data source speaks: act(observation, info) -> NES button byte.

Agents see the RGB frame and the env's info dict (which on the emulator also carries `ram`). An agent
may expose `last_text` (e.g. a VLM's raw reply for the step) that collectors store per step, and
`summary()` with its own statistics for the end-of-collection report.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from smbwm import actions as A


class AgentStopped(Exception):
    """Raised by `act` when the agent cannot go on (e.g. its model server is down). The collector
    saves the episode so far marked truncated, reports str(exc) once and stops collecting."""


class Agent:
    name = "agent"

    def __init__(self, action_set: str | Sequence[int] = "simple", seed: int | None = None):
        self.actions = A.action_set(action_set)
        self.rng = np.random.default_rng(seed)
        self.counts: Counter[int] = Counter()
        self.last_text: str | None = None

    def bind(self, env) -> None:
        """Called once with the environment the agent will act in (planners may clone its state)."""

    def reset(self, seed: int | None = None) -> None:
        """Start of an episode. A seed makes the agent's choices reproducible."""
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        byte = int(self._act(observation, info))
        self.counts[byte] += 1
        return byte

    def _act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def histogram(self) -> dict[str, float]:
        """Share of each action taken so far, by name."""
        total = sum(self.counts.values()) or 1
        return {A.name(b): c / total for b, c in sorted(self.counts.items())}

    def summary(self) -> dict[str, Any]:
        return {"actions": self.histogram()}


class HeldActions:
    """Hold a chosen action for k steps (k uniform in [lo, hi]): persistence makes random play
    produce real runs and jumps instead of jitter."""

    def __init__(self, hold: int | Sequence[int] = 1):
        lo, hi = (hold, hold) if isinstance(hold, int) else (int(hold[0]), int(hold[-1]))
        if not 1 <= lo <= hi:
            raise ValueError(f"hold must be >= 1 (an int or [min, max]), got {hold}")
        self.lo, self.hi = lo, hi
        self.current, self.left = 0, 0

    def clear(self) -> None:
        self.left = 0

    def next(self, rng: np.random.Generator, choose) -> int:
        if self.left <= 0:
            self.current = int(choose())
            self.left = int(rng.integers(self.lo, self.hi + 1))
        self.left -= 1
        return self.current
