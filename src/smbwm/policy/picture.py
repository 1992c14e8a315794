"""A picture of the Modular Mind at work: frames above, the mind's activity over time below.

One episode is played with `record=True`; the panel stacks, over the same time axis, each
specialist's hidden units, the shared latent after the RecursiveLink bridge, the coordinator's gates
on the action owners, the action probabilities with the chosen action marked (grey dots: random
explore choices) and Mario's x position. A GIF shows the frame next to the panel with a cursor.
Drawn with Pillow only (no matplotlib here).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image, ImageDraw

from smbwm import actions as A

LABEL_W = 96
ACTION_ROW_H = 11
PANEL_W = 1100                     # target panel width: steps are stretched to fill it


@dataclass
class PictureConfig:
    px_per_step: int = 3           # horizontal pixels per decision
    row_h: int = 4                 # pixels per unit / action row
    n_frames: int = 8              # frames shown above the panel
    frame_h: int = 120             # their height (half the NES resolution)


def _diverging(v: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] -> RGB: blue (negative), white (0), red (positive)."""
    v = np.clip(v, -1, 1)[..., None]
    white = np.ones(3)
    return np.where(v >= 0, white + v * (np.array([0.85, 0.1, 0.1]) - white),
                    white - v * (np.array([0.1, 0.25, 0.85]) - white)) * 255


def _sequential(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0, 1)[..., None]
    return (1 - v) * np.array([255.0, 255, 255]) + v * np.array([20.0, 20, 20])


def _band(rgb: np.ndarray, cfg: PictureConfig) -> Image.Image:
    """(units, T, 3) -> an image scaled by px_per_step x row_h (nearest neighbour)."""
    img = Image.fromarray(rgb.astype(np.uint8))
    return img.resize((rgb.shape[1] * cfg.px_per_step, rgb.shape[0] * cfg.row_h), Image.NEAREST)


def _px(cfg: PictureConfig, n_steps: int) -> int:
    """Pixels per step: short episodes are stretched to about PANEL_W."""
    return max(cfg.px_per_step, PANEL_W // max(n_steps, 1))


def mind_bands(trace: Sequence[dict[str, Any]], spec: dict[str, Any], xs: Sequence[int],
               cfg: PictureConfig) -> list[tuple[str, Image.Image]]:
    """The labelled bands of the panel, from an agent's trace of one episode."""
    bands: list[tuple[str, Image.Image]] = []
    for j, s in enumerate(spec["specialists"]):
        h = np.stack([t["hidden"][j] for t in trace], 1)                     # tanh: already in [-1, 1]
        own = ",".join(s["owns"]).replace("right", "R") or "(no action)"
        bands.append((f"{s['name']}\n{own}", _band(_diverging(h), cfg)))
    lat = np.stack([t["latent"] for t in trace], 1)
    bands.append(("shared latent", _band(_diverging(lat / (np.abs(lat).max() + 1e-6)), cfg)))
    gates = np.stack([t["gates"] for t in trace], 1)
    bands.append(("gates", _band(_sequential(gates), cfg)))
    probs = np.stack([t["probs"] for t in trace], 1)
    rgb = _sequential(probs)
    for t, step in enumerate(trace):                                      # the chosen action, marked
        rgb[step["action"], t] = (150, 150, 150) if step["random"] else (230, 120, 0)
    bands.append(("", _band(rgb, PictureConfig(cfg.px_per_step, ACTION_ROW_H))))   # labelled per row by panel()
    xs = np.asarray(xs, float)
    rows = 24
    line = np.full((rows, len(xs), 3), 255.0)
    lvl = ((xs - xs.min()) / max(np.ptp(xs), 1.0) * (rows - 1)).astype(int)
    line[rows - 1 - lvl, np.arange(len(xs))] = (0, 120, 0)
    bands.append((f"x_pos\n{int(xs.min())}..{int(xs.max())}", _band(line, PictureConfig(cfg.px_per_step, 2))))
    return bands


def panel(frames: Sequence[np.ndarray], trace: Sequence[dict[str, Any]], spec: dict[str, Any], xs: Sequence[int],
          cfg: PictureConfig = PictureConfig()) -> Image.Image:
    """The full PNG: sampled frames on top, then the bands, with labels on the left."""
    if not trace:
        raise ValueError("the trace is empty: play an episode with ModularMindAgent(record=True) first")
    cfg = PictureConfig(_px(cfg, len(trace)), cfg.row_h, cfg.n_frames, cfg.frame_h)
    bands = mind_bands(trace, spec, xs, cfg)
    width = LABEL_W + len(trace) * cfg.px_per_step
    fw = int(256 * cfg.frame_h / 240)
    n_frames = max(1, min(cfg.n_frames, (width - LABEL_W) // (fw + 4)))
    picks = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    strip_h = cfg.frame_h + 14
    height = strip_h + sum(b.height + 6 for _, b in bands) + 6
    img = Image.new("RGB", (max(width, LABEL_W + fw), height), "white")
    d = ImageDraw.Draw(img)
    for k, i in enumerate(picks):
        x0 = LABEL_W + int(k * (width - LABEL_W - fw) / max(n_frames - 1, 1))
        img.paste(Image.fromarray(frames[i]).resize((fw, cfg.frame_h)), (x0, 0))
        d.text((x0 + 2, cfg.frame_h + 1), f"t={i}", fill="black")
        tx = LABEL_W + min(i, len(trace) - 1) * cfg.px_per_step
        d.line([(x0 + fw // 2, cfg.frame_h + 12), (tx, strip_h)], fill=(180, 180, 180))
    y = strip_h
    for label, b in bands:
        img.paste(b, (LABEL_W, y))
        d.multiline_text((2, y), label, fill="black", spacing=1)
        y += b.height + 6
    names = [A.name(b) for b in spec["actions"]]
    ya = strip_h + sum(b.height + 6 for _, b in bands[:-2])
    for k, n in enumerate(names):                                         # one label per action row
        d.text((2, ya + k * ACTION_ROW_H), n[:16], fill="black")
    return img


def gif_frames(frames: Sequence[np.ndarray], png: Image.Image, n_steps: int, cfg: PictureConfig = PictureConfig(),
               every: int = 2) -> list[Image.Image]:
    """Frame t beside the panel with a red cursor at step t (every `every`-th step)."""
    out = []
    scale = 0.5
    small = png.resize((int(png.width * scale), int(png.height * scale)))
    for t in range(0, n_steps, every):
        canvas = Image.new("RGB", (256 + small.width, max(240, small.height)), "white")
        canvas.paste(Image.fromarray(frames[t]), (0, 0))
        canvas.paste(small, (256, 0))
        cx = 256 + int((LABEL_W + t * _px(cfg, n_steps)) * scale)
        ImageDraw.Draw(canvas).line([(cx, 0), (cx, small.height)], fill=(255, 0, 0))
        out.append(canvas.quantize(64))
    return out
