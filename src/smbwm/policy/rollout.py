"""Play episodes on the real emulator for training: inputs, chosen actions and shaped rewards.

Reward per step = new progress (tiles of x_pos beyond the best so far, so walking back and forth
earns nothing) − `death_penalty` on a death + `flag_bonus` on the flag. An episode that makes no
progress for `stall_limit` steps ends early (standing still is never worth the emulator time).
Workers keep one emulator per level alive between batches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smbwm.agents.modular_mind import ModularMindAgent


@dataclass
class RewardConfig:
    tile: float = 16.0             # pixels of progress per reward unit
    death_penalty: float = 15.0
    flag_bonus: float = 30.0
    stall_limit: int = 60
    max_steps: int = 1200


@dataclass
class Trajectory:
    level: str
    inputs: np.ndarray             # (T, input_size) float32
    actions: np.ndarray            # (T,) int64, index into the action set
    rewards: np.ndarray            # (T,) float32
    max_x: int = 0
    start_x: int = 0
    flag: bool = False
    died: bool = False
    stalled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


_ENVS: dict[str, Any] = {}


def _env(level: str):
    if level not in _ENVS:
        from smbwm.envs.smb_env import SuperMarioBrosGym
        _ENVS[level] = SuperMarioBrosGym(level=level)
    return _ENVS[level]


def play(agent, level: str, seed: int, rc: RewardConfig, env=None, teacher=None) -> Trajectory:
    """One episode. With a `teacher` (any Agent) the teacher acts and `agent` only records its
    inputs, with the teacher's choice as its memory: demonstrations for the warm start."""
    env = env or _env(level)
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    if teacher is not None:
        teacher.reset(seed=seed)
    xs, ids, rs = [], [], []
    best = start = int(info["x_pos"])
    died = flag = stalled = False
    since = 0
    for _ in range(rc.max_steps):
        if teacher is None:
            byte = agent.act(obs, info)
            x, i = agent.last_input, agent.last_index
        else:
            x = agent.observe(info)
            byte = teacher.act(obs, info)
            i = agent.actions.index(byte)
            agent.prev_index = i
        obs, _, terminated, truncated, info = env.step(byte)
        pos = int(info["x_pos"])
        r = max(0, pos - best) / rc.tile
        since = 0 if pos > best else since + 1
        best = max(best, pos)
        flag = bool(info.get("flag_get", False))
        if terminated and not flag:
            died, r = True, r - rc.death_penalty
        if flag:
            r += rc.flag_bonus
        xs.append(x)
        ids.append(i)
        rs.append(r)
        if terminated or truncated:
            break
        if since >= rc.stall_limit:
            stalled = True
            break
    return Trajectory(level, np.stack(xs).astype(np.float32), np.array(ids, np.int64), np.array(rs, np.float32),
                      max_x=best, start_x=start, flag=flag, died=died, stalled=stalled)


def worker_init(nice: int, pool_worker: bool = True) -> None:
    if pool_worker:
        import signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)    # Ctrl-C is the parent's: it saves state, stops the pool
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass


def play_batch(job: tuple[dict, dict, list[tuple[str, int]], dict, float]) -> list[Trajectory]:
    """Worker entry: (params, spec, [(level, seed)], reward config, explore) -> trajectories."""
    params, spec, episodes, rc, explore = job
    agent = ModularMindAgent(params=params, spec=spec, explore=explore, tier=None)
    return [play(agent, lv, seed, RewardConfig(**rc)) for lv, seed in episodes]


def play_demos(job: tuple[dict, dict, list[tuple[str, int]], dict, float]) -> list[Trajectory]:
    """Worker entry for the warm start: the scripted runner plays, the mind's inputs are recorded."""
    from smbwm.agents.scripted import ScriptedAgent
    params, spec, episodes, rc, explore = job
    agent = ModularMindAgent(params=params, spec=spec, explore=0.0, tier=None)
    teacher = ScriptedAgent(action_set=spec["actions"], explore=explore)
    return [play(agent, lv, seed, RewardConfig(**rc), teacher=teacher) for lv, seed in episodes]
