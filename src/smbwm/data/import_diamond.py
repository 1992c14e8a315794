"""Read DIAMOND_SuperMario's HDF5 recordings and spawn folders into our formats.

Their recorder (balanced_dataset_gen.py & co. in AlexBodner/DIAMOND_SuperMario) writes, per file,
flat datasets `frame_{i}_x` (240, 256, 3) uint8 — the frame seen at step i —, `frame_{i}_y` the action
taken at step i, and `frame_{i}_helperarr` = [reward of step i-1, life lost]. One file holds up to
1000 steps and may span several lives: on death their loop resets the game and keeps recording, so
the frame after a death is a fresh start, not the action's result. We cut segments there (a step
whose reward carries their -50 death bonus) and drop the step that crosses the cut.

Colour: the HDF5 frames are nes-py's RGB screen stored as is. Their training loader flips the channel
axis (`.flip(2)`, a leftover of CS:GO's BGR frames) and their spawn.py applies cv2 BGR2RGB to those
RGB frames before saving, so their spawn folders hold BGR. We keep HDF5 frames as RGB, flip spawn
frames, and `channel_order="auto"` double-checks with the overworld sky colour.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from smbwm import actions as A
from smbwm.data.episode import Episode

_SKY_RGB = np.array([104, 136, 252], np.uint8)     # nes-py's overworld sky
_KEY = re.compile(r"frame_(\d+)_x")
# 3-dim [jump, left, right] (balanced_dataset_gen.py); 4-dim WASD [jump, left, down, right]
# (create_dataset_acions.py); 7-dim one-hot over SIMPLE_MOVEMENT.
_MULTI_HOT_BUTTONS = {3: ("A", "left", "right"), 4: ("A", "left", "down", "right")}


class DiamondFormatError(ValueError):
    """Input that is not in the DIAMOND_SuperMario layout; str() is one line naming the file."""


@dataclass
class DiamondImportConfig:
    level: str = "1-1"               # their recorders only ever played 1-1
    channel_order: str = "auto"      # rgb | bgr | auto (sky colour)
    death_reward: float = -40.0      # helper reward at or below this marks a reset (their -50 bonus)
    min_steps: int = 1               # shorter segments are dropped


def decode_actions(vecs: np.ndarray, where: str = "") -> np.ndarray:
    """(N, 3|4|7) DIAMOND action vectors -> (N,) uint8 NES bytes."""
    v = np.asarray(vecs)
    if v.ndim != 2 or v.shape[1] not in (3, 4, 7):
        raise DiamondFormatError(f"{where}: action vectors must be (N, 3), (N, 4) or (N, 7), got {v.shape}")
    if v.shape[1] == 7:
        return np.array([A.SIMPLE_MOVEMENT[int(i)] for i in v.argmax(1)], np.uint8)
    bits = np.array([A.BUTTON_BITS[b] for b in _MULTI_HOT_BUTTONS[v.shape[1]]], np.uint8)
    return ((v > 0.5) * bits).sum(1).astype(np.uint8)


def looks_bgr(frames: np.ndarray) -> bool:
    """True if the overworld sky appears with red and blue swapped more often than as itself."""
    f = np.asarray(frames)[..., :3].reshape(-1, 3)
    return int((f == _SKY_RGB[::-1]).all(1).sum()) > int((f == _SKY_RGB).all(1).sum())


def to_rgb(frames: np.ndarray, channel_order: str) -> tuple[np.ndarray, str]:
    """Frames (..., 3) in `channel_order` ('auto' decides by sky colour) -> (RGB frames, order used)."""
    if channel_order not in ("rgb", "bgr", "auto"):
        raise ValueError(f"channel_order must be rgb, bgr or auto, got {channel_order!r}")
    order = ("bgr" if looks_bgr(frames[:: max(1, len(frames) // 16)]) else "rgb") if channel_order == "auto" else channel_order
    return (np.ascontiguousarray(frames[..., ::-1]) if order == "bgr" else frames), order


def read_diamond_file(path: str | Path, cfg: DiamondImportConfig) -> list[Episode]:
    """One DIAMOND_SuperMario HDF5 file -> its continuous segments as Episodes (RGB, NES bytes)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            idx = sorted(int(m.group(1)) for k in f.keys() if (m := _KEY.fullmatch(k)))
            if not idx:
                raise DiamondFormatError(f"{path}: no frame_{{i}}_x datasets (not a DIAMOND_SuperMario file)")
            if idx != list(range(len(idx))):
                raise DiamondFormatError(f"{path}: frame indices are not 0..{len(idx) - 1} without gaps")
            n = len(idx)
            missing = [f"frame_{i}_y" for i in range(n) if f"frame_{i}_y" not in f]
            if missing:
                raise DiamondFormatError(f"{path}: missing action dataset {missing[0]}")
            for i in range(n):            # shapes first: a forged header must not make us allocate it
                d = f[f"frame_{i}_x"]
                if not isinstance(d, h5py.Dataset) or d.shape != (240, 256, 3) or d.dtype != np.uint8:
                    raise DiamondFormatError(f"{path}: frame_{i}_x must be a (240, 256, 3) uint8 dataset, got "
                                             f"{getattr(d, 'shape', 'a group')} {getattr(d, 'dtype', '')}")
            frames = np.stack([f[f"frame_{i}_x"][()] for i in range(n)])
            acts = decode_actions(np.stack([np.ravel(f[f"frame_{i}_y"][()]) for i in range(n)]), str(path))
            helper = (np.stack([np.ravel(f[f"frame_{i}_helperarr"][()])[:2] for i in range(n)]).astype(np.float64)
                      if all(f"frame_{i}_helperarr" in f for i in range(n)) else None)
    except DiamondFormatError:
        raise
    except (OSError, KeyError, ValueError, TypeError, AttributeError, RuntimeError) as e:
        raise DiamondFormatError(f"{path}: unreadable HDF5 file ({(str(e).splitlines() or [type(e).__name__])[0]})") from None
    if frames.shape[1:] != (240, 256, 3) or frames.dtype != np.uint8:
        raise DiamondFormatError(f"{path}: frames must be (240, 256, 3) uint8, got {frames.shape[1:]} {frames.dtype}")
    frames, order = to_rgb(frames, cfg.channel_order)
    # helper[i] describes the step *into* frame i: a death there means frame i is a fresh reset
    cuts = [i for i in range(1, n) if helper is not None and (helper[i, 0] <= cfg.death_reward or helper[i, 1] > 0)]
    rewards = np.zeros(n, np.float32)
    if helper is not None:
        rewards[:-1] = helper[1:, 0]
    out = []
    for k, (s, e) in enumerate(zip([0] + cuts, cuts + [n])):   # frames s..e-1, steps s..e-2
        T = e - 1 - s
        if T < cfg.min_steps:
            continue
        trunc = np.zeros(T, bool)
        trunc[-1] = True   # the true end (death / flag / time) is not in the file
        w, st = (int(x) for x in cfg.level.split("-")) if re.fullmatch(r"\d-\d", cfg.level) else (0, 0)
        info = {"world": np.full(T + 1, w, np.int32), "stage": np.full(T + 1, st, np.int32)}
        out.append(Episode(
            frames=frames[s:e], actions=acts[s:e - 1], rewards=rewards[s:e - 1], terminated=np.zeros(T, bool),
            truncated=trunc, info=info,
            attrs={"source": "diamond_supermario/import", "level": cfg.level, "seed": -1, "original_file": path.name,
                   "original_start": s, "segment": k, "channel_order_in": order, "has_info": False,
                   "has_rewards": helper is not None},
        ))
    return out
