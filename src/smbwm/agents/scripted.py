"""A hand-written runner that reads the NES RAM: run right, jump walls, pits and enemies.

It holds right+B and jumps (holding A long for tall obstacles, short for enemies) when a wall, a pit
or an enemy is ahead, or when it has not advanced for a while. `explore` is the probability, per
decision, of a random action from the action set held for a few steps: the dial between a clean run
and diverse data.
"""
from __future__ import annotations

from typing import Any, Sequence

from smbwm import actions as A
from smbwm.agents import ram_map as R
from smbwm.agents.base import Agent, HeldActions

RUN = A.to_byte(["right", "B"])
RUN_JUMP = A.to_byte(["right", "B", "A"])


class ScriptedAgent(Agent):
    name = "scripted"

    def __init__(self, action_set: str | Sequence[int] = "simple", explore: float = 0.05,
                 explore_hold: int | Sequence[int] = (2, 8), look_ahead: int = 40, seed: int | None = None):
        super().__init__(action_set, seed)
        if not 0.0 <= explore <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        self.explore, self.look_ahead = explore, look_ahead
        self.random_hold = HeldActions(explore_hold)
        self._reset_state()

    def _reset_state(self) -> None:
        self.jump_left = 0          # steps left holding A
        self.release = False        # A must be released one step before the next jump
        self.best_x, self.stall = 0, 0
        self.last = 0               # the previous action (a jump needs A released first)
        self.random_hold.clear()

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._reset_state()

    def _threat(self, ram) -> int:
        """How long to hold A (steps) for what is ahead; 0 means no jump needed."""
        x, y = R.player_xy(ram)
        body = R.row_of(y + 8)
        ahead = range(x + 12, x + self.look_ahead, 8)
        near = range(x + 12, x + 28, 8)
        if any(R.solid(ram, cx, body - 1) for cx in near):
            return 8                                     # wall or pipe: full jump
        if any(R.solid(ram, cx, body) for cx in near):
            return 4                                     # one-tile step (stairs): a hop lands on it, so
                                                         # the pit check runs again from the top
        if body < 12 and any(not any(R.solid(ram, cx, r) for r in range(body + 1, R.N_ROWS)) for cx in ahead):
            return 7                                     # a pit: long jump
        for ex, ey, _ in R.enemies(ram):
            if 0 < ex - x < 56 and abs(ey - y) < 40:
                return 4                                 # an enemy: a hop over it
        return 0

    def _act(self, observation, info: dict[str, Any]) -> int:
        self.last = self._decide(info)
        return self.last

    def _decide(self, info: dict[str, Any]) -> int:
        ram = info.get("ram")
        if ram is None:
            raise ValueError("ScriptedAgent needs info['ram'] (the NES RAM); use it on the emulator env")
        x = int(info.get("x_pos", 0))
        if x > self.best_x:
            self.best_x, self.stall = x, 0
        else:
            self.stall += 1
        if self.random_hold.left > 0:
            return self.random_hold.next(self.rng, lambda: self.random_hold.current)
        if self.jump_left == 0 and self.explore > 0 and self.rng.random() < self.explore:
            return self.random_hold.next(self.rng, lambda: self.actions[self.rng.integers(len(self.actions))])
        if self.jump_left > 0:
            self.jump_left -= 1
            if self.jump_left == 0:
                self.release = True
            return RUN_JUMP
        if self.release:                                # let go of A so the next jump registers
            self.release = False
            return RUN
        if R.on_ground(ram):
            hold = self._threat(ram) or (8 if self.stall > 6 else 0)
            if hold and self.last & A.BUTTON_BITS["A"]:
                return RUN                              # A still held (an exploring action): release first
            if hold:
                self.jump_left = hold - 1
                return RUN_JUMP
        return RUN
