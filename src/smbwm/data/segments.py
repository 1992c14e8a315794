"""Training batches: random segments of low-res episodes (denoiser) and full-res frame pairs (upsampler).

All low-res frames of the training set live in RAM (60x64x3 bytes a frame: 250k frames = 2.9 GB),
so a batch is a few numpy gathers; a background thread prepares the next batch while the model
trains (numpy and h5py release the GIL), which keeps the 2 cores on the model.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from smbwm import actions as A
from smbwm.data.episode import EpisodeError, read_episode, read_frames
from smbwm.data.lowres import build_cache, load_scrolls
from smbwm.models.mario_sprite import game_mario_position


@dataclass
class DataConfig:
    dir: str | None = None               # episodes directory (required)
    cache_dir: str | None = None         # low-res cache root; null: <dir>/.lowres_60x64 (read-only dataset: set it)
    split: str | None = None             # split file; default <dir>/split.json if present, else all episodes train
    batch_size: int = 32
    upsampler_batch_size: int = 8
    weighting: str = "uniform"           # uniform over steps | episode (each episode equally likely)
    pool_size: int = 2048                # full-res frame pairs held in RAM for the upsampler
    pool_refresh: int = 500              # replace the pool every N upsampler steps
    prefetch: bool = True


@dataclass
class LowresEpisode:
    path: Path
    low: np.ndarray          # (T+1, 60, 64, 3) uint8
    actions: np.ndarray      # (T,) uint8
    scrolls: np.ndarray      # (T,) int8
    mario: np.ndarray | None = None   # (T+1, 2) float32 Mario's centre in low-res (row, col); NaN: off screen / unknown


def mario_lowres_position(info: dict[str, np.ndarray], frames: int) -> np.ndarray:
    """(frames, 2) Mario's sprite centre in low-res pixels (row, col) from the game's info keys, NaN where
    he is off screen or the episode has no positions (e.g. imported data)."""
    out = np.full((frames, 2), np.nan, np.float32)
    if all(k in info for k in ("x_pos", "camera_x", "y_pos")):
        x, y = game_mario_position(info["x_pos"][:frames], info["camera_x"][:frames], info["y_pos"][:frames])
        out[:len(x)] = np.stack([y, x], 1) / 4     # 240x256 -> 60x64: 4x4 pixels a low-res one
    return out


def load_lowres_episodes(paths: list[Path], data_dir: str | Path, cache_root: str | Path | None = None
                         ) -> list[LowresEpisode]:
    """Every episode's low-res frames (cache built if missing), actions and scrolls, in RAM."""
    if not paths:
        raise EpisodeError(f"{data_dir}: no episodes to train on")
    lows = build_cache(data_dir, paths, cache_root=cache_root)
    out = []
    for p, low in zip(paths, lows):
        ep = read_episode(p, frames=False)
        out.append(LowresEpisode(p, np.ascontiguousarray(low), ep.actions, load_scrolls(p, data_dir, cache_root),
                                 mario_lowres_position(ep.info or {}, len(low))))
    return out


class SegmentSampler:
    """Random windows: context frames t-c+1..t, actions at those frames, target frame t+1.

    Windows that start before the episode are left-padded by repeating the first frame with NOOP
    actions and zero scroll (the game stands still before it starts); `mask` marks the real ones.
    """

    def __init__(self, episodes: list[LowresEpisode], context: int, weighting: str = "uniform", seed: int = 0):
        self.episodes, self.context = episodes, context
        lengths = np.array([len(e.actions) for e in episodes])
        if weighting == "uniform":
            p = lengths / lengths.sum()
        elif weighting == "episode":
            p = np.full(len(episodes), 1 / len(episodes))
        else:
            raise ValueError(f"data.weighting must be uniform or episode, got {weighting!r}")
        self.p, self.lengths = p, lengths
        self.rng = np.random.default_rng(seed)
        self._mh = A.MULTI_HOT_TABLE

    def sample(self, batch: int, lead: int = 0) -> dict[str, torch.Tensor]:
        """`lead` > 0 prepends that many earlier frames (with their actions and scrolls) to the context:
        obs (B, lead+context, ...), act (B, lead+context, 6), past_scroll (B, lead+context-1); the
        trainer replaces the later frames by the model's own predictions from them."""
        c = self.context + lead
        eps = self.rng.choice(len(self.episodes), size=batch, p=self.p)
        obs = np.empty((batch, c, 60, 64, 3), np.uint8)
        act = np.zeros((batch, c), np.uint8)
        past = np.zeros((batch, c - 1), np.int8)
        target = np.empty((batch, 60, 64, 3), np.uint8)
        scroll = np.empty(batch, np.int8)
        mask = np.empty((batch, c), bool)
        mario = np.full((batch, 2, 2), np.nan, np.float32)      # Mario in the last context frame and the target
        for i, e in enumerate(eps):
            ep = self.episodes[e]
            t = int(self.rng.integers(len(ep.actions)))
            idx = np.arange(t - c + 1, t + 1)
            mask[i] = idx >= 0
            obs[i] = ep.low[np.maximum(idx, 0)]
            act[i] = np.where(mask[i], ep.actions[np.maximum(idx, 0)], A.NOOP)
            pidx = idx[:-1]
            past[i] = np.where(pidx >= 0, ep.scrolls[np.maximum(pidx, 0)], 0)
            target[i] = ep.low[t + 1]
            scroll[i] = ep.scrolls[t]
            if ep.mario is not None:
                mario[i] = ep.mario[t:t + 2]
        return {"obs": torch.from_numpy(obs), "act": torch.from_numpy(self._mh[act]),
                "past_scroll": torch.from_numpy(past), "scroll": torch.from_numpy(scroll),
                "target": torch.from_numpy(target), "mask": torch.from_numpy(mask), "mario": torch.from_numpy(mario)}

    def state(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state(self, st: dict) -> None:
        self.rng.bit_generator.state = st["rng"]


class FramePairPool:
    """Full-res (frame t, frame t+1, scroll t, low-res t+1) pairs for the upsampler, refreshed from disk."""

    def __init__(self, episodes: list[LowresEpisode], size: int, seed: int = 0):
        self.episodes, self.size = episodes, size
        self.rng = np.random.default_rng(seed + 1)
        lengths = np.array([len(e.actions) for e in episodes])
        self.p = lengths / lengths.sum()
        self.refresh()

    def refresh(self) -> None:
        self.refresh_state = self.rng.bit_generator.state      # resume re-reads the same pool from here
        picks = sorted((int(e), int(self.rng.integers(len(self.episodes[e].actions))))
                       for e in self.rng.choice(len(self.episodes), size=self.size, p=self.p))
        self.prev = np.empty((self.size, 240, 256, 3), np.uint8)
        self.next = np.empty_like(self.prev)
        self.scroll = np.empty(self.size, np.int8)
        self.next_low = np.empty((self.size, 60, 64, 3), np.uint8)
        by_episode: dict[int, list[int]] = {}
        for e, t in picks:
            by_episode.setdefault(e, []).append(t)
        i = 0
        for e, ts in by_episode.items():                   # one file open per episode
            ep = self.episodes[e]
            need = sorted(set(ts) | {t + 1 for t in ts})
            frames = dict(zip(need, read_frames(ep.path, need)))
            for t in ts:
                self.prev[i], self.next[i] = frames[t], frames[t + 1]
                self.scroll[i], self.next_low[i] = ep.scrolls[t], ep.low[t + 1]
                i += 1

    def sample(self, batch: int) -> dict[str, torch.Tensor]:
        i = self.rng.integers(self.size, size=batch)
        return {"prev": torch.from_numpy(self.prev[i]), "next": torch.from_numpy(self.next[i]),
                "scroll": torch.from_numpy(self.scroll[i]), "next_low": torch.from_numpy(self.next_low[i])}


    def state(self) -> dict:
        return {"refresh": self.refresh_state, "rng": self.rng.bit_generator.state}

    def load_state(self, st: dict) -> None:
        self.rng.bit_generator.state = st["refresh"]
        self.refresh()
        self.rng.bit_generator.state = st["rng"]


class Prefetcher:
    """Calls `fn()` in a background thread, one batch ahead."""

    def __init__(self, fn, enabled: bool = True):
        self.fn, self.enabled = fn, enabled
        self.q: queue.Queue = queue.Queue(maxsize=2)
        if enabled:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()

    def _run(self) -> None:
        while True:
            self.q.put(self.fn())

    def next(self):
        return self.q.get() if self.enabled else self.fn()
