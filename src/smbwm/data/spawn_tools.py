"""Make spawn folders (data/spawn.py format) from episodes, convert DIAMOND_SuperMario spawns, and
bring the real game to a spawn's state by replay.

Picks are spread over levels first, then episodes, and avoid the first steps after a reset (Mario
standing at the start is a dull spawn) and the steps just before a death (the dream would start in
a situation with no future).
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from smbwm.data.episode import Episode, read_episode
from smbwm.data.import_diamond import decode_actions, to_rgb
from smbwm.data.lowres import downsample
from smbwm.data.spawn import CONTEXT, Spawn, SpawnError
from smbwm.stages import stage_name


@dataclass
class SpawnPickConfig:
    count: int = 8
    seed: int = 0
    skip_start: int = 20      # steps after the start of an episode (or a lost life) that are never picked
    avoid_death: int = 30     # steps before a death that are never picked
    next_actions: int = 200   # real actions kept after the spawn (next_act.npy)


def allowed_starts(ep: Episode, cfg: SpawnPickConfig) -> np.ndarray:
    """Frame indices s such that frames s..s+3 and action s+3 make a good spawn."""
    T = len(ep)
    ok = np.ones(T + 1, bool)
    ok[: cfg.skip_start] = False
    life = ep.info.get("life")
    flag = ep.info.get("flag_get")
    deaths = [t for t in range(1, T + 1) if life is not None and life[t] < life[t - 1]]
    if ep.terminated[-1] and not (flag is not None and flag[-1]):
        deaths.append(T)
    for d in deaths:
        ok[max(0, d - cfg.avoid_death): d + cfg.skip_start] = False
    starts = [s for s in range(0, T - CONTEXT + 1) if ok[s: s + CONTEXT].all()]
    return np.array(starts, np.int64)


def is_emulator_episode(ep: Episode) -> bool:
    return str(ep.attrs.get("source", "")).startswith("nes/") or ep.attrs.get("env") == "nes"


def replay_level(ep: Episode) -> str | None:
    """The 'W-S' to reset the emulator at for a replay (random-stage episodes: the stage played)."""
    try:
        return stage_name(str(ep.attrs.get("level", "")))
    except ValueError:
        if "world" in ep.info and "stage" in ep.info:
            return f"{int(ep.info['world'][0])}-{int(ep.info['stage'][0])}"
        return None


def make_spawn(ep: Episode, start: int, episode_name: str, next_actions: int = 200) -> Spawn:
    s, e = start, start + CONTEXT
    if not 0 <= s <= len(ep) - CONTEXT:
        raise SpawnError(f"{episode_name}: start {s} leaves no room for {CONTEXT} frames and their actions")
    frames = np.asarray(ep.frames[s:e])
    meta: dict[str, Any] = {"source": ep.attrs.get("source", ""), "level": ep.attrs.get("level", ""),
                            "episode": episode_name, "start": s, "frame_skip": int(ep.attrs.get("frame_skip", 4))}
    if is_emulator_episode(ep) and (lv := replay_level(ep)):
        meta["level"] = lv
        meta["replay_actions"] = [int(a) for a in ep.actions[: s + CONTEXT - 1]]  # frame 0 -> frame s+3
    return Spawn(full_res=frames, low_res=downsample(frames), actions=np.asarray(ep.actions[s:e], np.uint8),
                 next_actions=np.asarray(ep.actions[e: e + next_actions], np.uint8), meta=meta)


def pick_spawns(paths: list[Path], cfg: SpawnPickConfig, root: Path | None = None) -> list[tuple[Path, int]]:
    """(episode path, start) pairs: round-robin over levels, then over episodes within a level."""
    rng = np.random.default_rng(cfg.seed)
    by_level: dict[str, list[tuple[Path, np.ndarray]]] = defaultdict(list)
    for p in paths:
        ep = read_episode(p, frames=False)
        starts = allowed_starts(ep, cfg)
        if len(starts):
            by_level[replay_level(ep) or str(ep.attrs.get("level", ""))].append((p, starts))
    levels = sorted(by_level)
    rng.shuffle(levels)
    for lv in levels:
        rng.shuffle(by_level[lv])
    picks: list[tuple[Path, int]] = []
    used: set[tuple[Path, int]] = set()
    rounds = 0
    while len(picks) < cfg.count and any(by_level.values()) and rounds < 100 * max(cfg.count, 1):
        for lv in levels:
            if len(picks) >= cfg.count or not by_level[lv]:
                continue
            p, starts = by_level[lv][rounds % len(by_level[lv])]
            s = int(starts[rng.integers(len(starts))])
            if (p, s) not in used:
                used.add((p, s))
                picks.append((p, s))
        rounds += 1
    return picks


def convert_diamond_spawn(src: str | os.PathLike) -> Spawn:
    """A DIAMOND_SuperMario spawn folder (act.npy (4, 3), full_res.npy (4, 3, 240, 256) BGR, low_res.npy,
    next_act.npy) -> our Spawn (RGB, HWC, NES bytes). Their low_res (bicubic) is recomputed as the exact
    4x4 average, our convention."""
    p = Path(src)
    try:
        full = np.load(p / "full_res.npy", allow_pickle=False)
        act = np.load(p / "act.npy", allow_pickle=False)
        nxt = np.load(p / "next_act.npy", allow_pickle=False) if (p / "next_act.npy").exists() else np.zeros((0, 3))
    except (OSError, ValueError) as e:
        raise SpawnError(f"{p}: not a DIAMOND_SuperMario spawn folder ({str(e).splitlines()[0]})") from None
    if full.shape != (CONTEXT, 3, 240, 256) or full.dtype != np.uint8:
        raise SpawnError(f"{p}: full_res.npy must be ({CONTEXT}, 3, 240, 256) uint8, got {full.shape} {full.dtype}")
    try:
        acts = decode_actions(act.reshape(CONTEXT, -1), str(p / "act.npy"))
        nxt_b = decode_actions(nxt.reshape(len(nxt), -1), str(p / "next_act.npy")) if len(nxt) else np.zeros(0, np.uint8)
    except ValueError as e:
        raise SpawnError(str(e)) from None
    rgb, _ = to_rgb(np.ascontiguousarray(full.transpose(0, 2, 3, 1)), "bgr")
    return Spawn(full_res=rgb, low_res=downsample(rgb), actions=acts, next_actions=nxt_b,
                 meta={"source": "diamond_supermario/spawn", "level": "1-1", "original": str(p)})


def replay_to_spawn(env, spawn: Spawn) -> np.ndarray:
    """Reset an emulator env (made for spawn.meta['level']) and step the spawn's
    replay_actions; returns the observation, which equals spawn.full_res[-1] (the emulator is
    deterministic). The env is left there, so the real game can continue from the spawn."""
    actions = spawn.replay_actions
    level = spawn.meta.get("level")
    where = spawn.path or "spawn"
    if actions is None:
        raise SpawnError(f"{where}: has no replay_actions (not recorded on the emulator)")
    base = env.unwrapped
    if getattr(base, "level", level) != level or getattr(base, "random_stages", False):
        raise SpawnError(f"{where}: recorded on level {level}, but the env plays "
                         f"{'random stages' if getattr(base, 'random_stages', False) else base.level}")
    if getattr(base, "frame_skip", 4) != int(spawn.meta.get("frame_skip", 4)):
        raise SpawnError(f"{where}: recorded with frame_skip {spawn.meta.get('frame_skip')}, env uses {base.frame_skip}")
    return replay_actions(env, actions, where)


def replay_actions(env, actions, where: str = "replay") -> np.ndarray:
    """Reset an emulator env and step `actions` (NES bytes): the observation after the last one, which
    equals the recorded frame (the emulator is deterministic). SpawnError if the game ends on the way."""
    obs, _ = env.reset()
    for i, a in enumerate(actions):
        obs, _, term, trunc, _ = env.step(int(a))
        if (term or trunc) and i < len(actions) - 1:
            raise SpawnError(f"{where}: the replay ended after {i + 1} of {len(actions)} steps (env time limit?)")
    return obs
