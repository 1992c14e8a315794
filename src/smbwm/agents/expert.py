"""Expert: A* over the level simulator's cloned states (MarioGPT's levels are judged by an A* agent too).

Each search node is the game state after one env step (frame_skip NES frames) of one of a few
macro actions; cost = steps, heuristic = steps left at full run speed to a target `horizon` pixels
ahead (or the flag). The plan is executed for `commit` pixels of progress, then re-planned from
the real state, so a plan never ends the agent in a spot it cannot leave. Works only on LevelEnv.
"""
from __future__ import annotations

import heapq
import itertools
import time
from typing import Any, Sequence

import numpy as np

from smbwm import actions as A
from smbwm.agents.base import Agent
from smbwm.envs.level_physics import RUN_MAX, LevelState, step_frame
from smbwm.utils.config_errors import config_error

MACROS = ("right+B", "right+B+A", "right+A", "right", "NOOP", "left+B")


class ExpertAgent(Agent):
    name = "expert"

    def __init__(self, action_set: str | Sequence[int] = "simple", seed: int | None = None,
                 macros: Sequence[str] = MACROS, horizon: int = 288, commit: int = 144,
                 max_expansions: int = 1500, weight: float = 2.5, retry_factor: int = 4, explore: float = 0.0):
        super().__init__(action_set, seed)
        self.macros = [A.to_byte(m.split("+")) if m != "NOOP" else 0 for m in macros]
        if horizon <= commit or commit < 16:
            raise ValueError(f"need horizon > commit >= 16 pixels, got horizon={horizon} commit={commit}")
        self.horizon, self.commit, self.max_expansions = int(horizon), int(commit), int(max_expansions)
        self.weight = float(weight)             # weighted A*: > 1 trades optimality for far fewer expansions
        self.retry_factor = int(retry_factor)   # a failed search is retried this many times wider
        self.explore = float(explore)
        self.env = None
        self.plan: list[int] = []
        self.plan_end_x = 0.0
        self.stats = {"plans": 0, "expansions": 0, "plan_seconds": 0.0, "failed_plans": 0}

    def bind(self, env) -> None:
        from smbwm.envs.level_env import LevelEnv
        inner = getattr(env, "unwrapped", env)
        if not isinstance(inner, LevelEnv):
            config_error(f"agent=expert plans over the MarioGPT level simulator and cannot play "
                         f"{type(inner).__name__}: use env=levels")
        self.env = inner

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self.plan = []

    def _act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        if self.env is None:
            raise RuntimeError("ExpertAgent.act before bind(env)")
        state = self.env.state
        if self.explore and self.rng.random() < self.explore:
            self.plan = []                   # a random step breaks the plan: re-plan afterwards
            return int(self.rng.choice(self.actions))
        if not self.plan or state.mario.x >= self.plan_end_x:
            self.plan, self.plan_end_x = self._search(state, self.weight, self.max_expansions)
            if self.plan_end_x == float("inf"):  # target out of reach: a wider, less greedy search
                self.plan, self.plan_end_x = self._search(state, 1.0 + (self.weight - 1.0) / 2,
                                                          self.retry_factor * self.max_expansions)
        return self.plan.pop(0) if self.plan else A.to_byte(["right", "B"])

    # --- search ----------------------------------------------------------------------------------
    def _search(self, root: LevelState, weight: float, max_expansions: int) -> tuple[list[int], float]:
        t0 = time.perf_counter()
        skip = self.env.frame_skip
        x0 = root.mario.x
        target = min(x0 + self.horizon, root.pole_x)
        per_step = RUN_MAX * skip
        tie = itertools.count()
        def h(s: LevelState) -> float:
            return 0.0 if s.flag else weight * max(0.0, target - s.mario.x) / per_step
        frontier = [(h(root), next(tie), 0, root, None)]
        parents: dict[int, tuple[int | None, int]] = {}
        seen: set[tuple] = set()
        best = (h(root), 0, -1)                  # (h, g, node id): the closest node if the target is out of reach
        expansions, found = 0, None
        while frontier and expansions < max_expansions:
            _, nid, g, s, _ = heapq.heappop(frontier)
            m = s.mario
            if s.flag or m.x >= target:
                found = nid
                break
            key = (int(m.x / 2), int(m.y / 2), int(m.vx * 2), int(m.vy), m.on_ground, m.a_was_held, m.rising_with_a)
            if key in seen:
                continue
            seen.add(key)
            expansions += 1
            if (h(s), -g) < (best[0], -best[1]):
                best = (h(s), g, nid)
            for a in self.macros:
                child = s.clone()
                for _ in range(skip):
                    step_frame(child, a)
                    if child.over:
                        break
                if child.dead:
                    continue
                cid = next(tie)
                parents[cid] = (nid, a)
                heapq.heappush(frontier, (g + 1 + h(child), cid, g + 1, child, None))
        self.stats["plans"] += 1
        self.stats["expansions"] += expansions
        self.stats["plan_seconds"] += time.perf_counter() - t0
        end = found if found is not None else best[2]
        if found is None:
            self.stats["failed_plans"] += 1
        plan: list[int] = []
        while end in parents:
            end, a = parents[end]
            plan.append(a)
        plan.reverse()
        # commit to the first part only; a failed search walks its best partial plan to the end
        return plan, (x0 + self.commit if found is not None else float("inf"))

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        n = max(1, self.stats["plans"])
        out.update(plans=self.stats["plans"], failed_plans=self.stats["failed_plans"],
                   expansions_per_plan=round(self.stats["expansions"] / n, 1),
                   seconds_per_plan=round(self.stats["plan_seconds"] / n, 3))
        return out
