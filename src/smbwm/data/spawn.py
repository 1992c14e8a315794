"""Spawn points: 4 consecutive real frames to start the dream (and the real game) from.

A spawn is a folder:
    full_res.npy  (4, 240, 256, 3) uint8 RGB
    low_res.npy   (4, 60, 64, 3)   uint8 (exact 4x4 average of full_res)
    act.npy       (4,) uint8 NES bytes; act[i] was taken at frame i, so act[0:3] lie between the
                  frames and act[3] is the action the real game took next
    next_act.npy  (K,) uint8 the real actions that followed (optional)
    meta.json     {"source", "level", "episode", "start": index of frame 0 in the episode,
                   "replay_actions": actions from the episode start up to frame 3 (emulator spawns)}
    preview.png
The emulator is deterministic, so resetting the level and stepping `replay_actions` brings the real
game to the spawn's last frame.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smbwm.data.lowres import downsample

CONTEXT = 4


class SpawnError(ValueError):
    """A folder that is not a valid spawn; str() is one line naming it."""


@dataclass
class Spawn:
    full_res: np.ndarray            # (4, 240, 256, 3) uint8
    low_res: np.ndarray             # (4, 60, 64, 3) uint8
    actions: np.ndarray             # (4,) uint8
    next_actions: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def replay_actions(self) -> list[int] | None:
        r = self.meta.get("replay_actions")
        return None if r is None else [int(a) for a in r]


def save_spawn(spawn: Spawn, out_dir: str | os.PathLike) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "full_res.npy", np.asarray(spawn.full_res, np.uint8))
    np.save(out / "low_res.npy", np.asarray(spawn.low_res, np.uint8))
    np.save(out / "act.npy", np.asarray(spawn.actions, np.uint8))
    np.save(out / "next_act.npy", np.asarray(spawn.next_actions, np.uint8))
    (out / "meta.json").write_text(json.dumps(spawn.meta, indent=1))
    from PIL import Image
    Image.fromarray(np.concatenate(list(spawn.full_res), axis=1)).save(out / "preview.png")
    return out


def load_spawn(path: str | os.PathLike) -> Spawn:
    """Load and validate a spawn folder; any problem raises SpawnError naming the folder."""
    p = Path(path)
    if not p.is_dir():
        raise SpawnError(f"{p}: not a spawn folder (expected a directory with full_res.npy, act.npy ...)")
    try:
        full = np.load(p / "full_res.npy", allow_pickle=False)
        acts = np.load(p / "act.npy", allow_pickle=False)
        low = np.load(p / "low_res.npy", allow_pickle=False) if (p / "low_res.npy").exists() else None
        nxt = np.load(p / "next_act.npy", allow_pickle=False) if (p / "next_act.npy").exists() else np.zeros(0, np.uint8)
        meta = json.loads((p / "meta.json").read_text()) if (p / "meta.json").exists() else {}
    except (OSError, ValueError) as e:
        raise SpawnError(f"{p}: unreadable spawn ({str(e).splitlines()[0]})") from None
    if not isinstance(meta, dict):
        raise SpawnError(f"{p}: meta.json must hold a JSON object, got a {type(meta).__name__}")
    replay = meta.get("replay_actions")
    if replay is not None and not (isinstance(replay, list) and all(
            isinstance(a, int) and not isinstance(a, bool) and 0 <= a <= 255 for a in replay)):
        raise SpawnError(f"{p}: meta.json replay_actions must be a list of NES bytes (0..255)")
    if full.shape != (CONTEXT, 240, 256, 3) or full.dtype != np.uint8:
        raise SpawnError(f"{p}: full_res.npy must be ({CONTEXT}, 240, 256, 3) uint8 RGB, got {full.shape} {full.dtype}")
    if acts.shape != (CONTEXT,) or acts.dtype != np.uint8:
        raise SpawnError(f"{p}: act.npy must be ({CONTEXT},) uint8 NES bytes, got {acts.shape} {acts.dtype}")
    if low is None:
        low = downsample(full)
    elif low.shape != (CONTEXT, 60, 64, 3) or low.dtype != np.uint8:
        raise SpawnError(f"{p}: low_res.npy must be ({CONTEXT}, 60, 64, 3) uint8, got {low.shape} {low.dtype}")
    return Spawn(full, low, acts, nxt.astype(np.uint8), meta, p)


def list_spawns(root: str | os.PathLike) -> list[Path]:
    """Spawn folders directly under root (or root itself if it is one), sorted."""
    r = Path(root)
    if (r / "full_res.npy").exists():
        return [r]
    return sorted(d for d in r.iterdir() if (d / "full_res.npy").exists()) if r.is_dir() else []
