"""Camera motion: SMB scrolls horizontally only, by whole pixels, and never moves its status bar.

Most of a next frame is the last frame shifted by the camera scroll. We estimate the scroll between
two frames from the images (exhaustive search over integer shifts below the HUD band, exact on real
NES frames), build the motion-compensated prior `shift(last_full, k)` and its exact low-res version,
and let the networks predict only what the shift does not explain. The scroll `k` of the next step
is predicted by `ScrollHead` (a classifier over -MAX_SHIFT..MAX_SHIFT).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

HUD_ROWS = 32                  # the status bar (score, coins, world, time) does not scroll
MAX_SHIFT = 16                 # pixels per step at frame-skip 4 (Mario's top speed is ~3 px/frame)
NUM_SHIFTS = 2 * MAX_SHIFT + 1
_ORDER = sorted(range(-MAX_SHIFT, MAX_SHIFT + 1), key=abs)  # ties go to the smallest |k|
TILE = 16                      # px: SMB's level is a grid of 16x16 metatiles
REVEAL_FILLS = ("edge", "tile")


def _source_columns(x: torch.Tensor, k: torch.Tensor, w: int, fill: str, period: int) -> torch.Tensor:
    """Column each output column copies when the playfield moves left by k: x + k inside the frame; in
    the strip the camera reveals, the edge column ("edge") or the column a whole number of tiles back
    inside the frame ("tile": sky stays sky and the ground keeps its bricks, where repeating the edge
    column draws horizontal streaks that the networks then have to paint over, step after step)."""
    src = x + k
    if fill == "tile":
        src = src - (src - (w - 1)).clamp_min(0).add(period - 1).div(period, rounding_mode="floor") * period
        src = src + (-src).clamp_min(0).add(period - 1).div(period, rounding_mode="floor") * period
    elif fill != "edge":
        raise ValueError(f"reveal fill must be one of {REVEAL_FILLS}, got {fill!r}")
    return src.clamp(0, w - 1)


@torch.no_grad()
def estimate_scrolls(frames, row_step: int = 2) -> np.ndarray:
    """Scroll between consecutive full-res frames: (T+1, 240, 256, 3) uint8 -> (T,) int8.

    k[t] is the integer such that frames[t+1][:, x] ~ frames[t][:, x + k] below the HUD (k > 0: the
    camera moved right). Exhaustive search over |k| <= MAX_SHIFT by mean absolute difference of a
    luminance proxy on every `row_step`-th row; ties go to the smallest |k| (flat sky is ambiguous).
    """
    f = torch.as_tensor(np.asarray(frames))[:, HUD_ROWS::row_step].to(torch.int16).sum(-1).float()  # (T+1, R, W)
    a, b = f[:-1], f[1:]
    w = f.shape[-1]
    errs = []
    for k in _ORDER:
        if k >= 0:
            errs.append((b[..., : w - k] - a[..., k:]).abs().mean((1, 2)))
        else:
            errs.append((b[..., -k:] - a[..., : w + k]).abs().mean((1, 2)))
    e = torch.stack(errs, 1)                                   # (T, NUM_SHIFTS) in _ORDER
    # first index within a tiny tolerance of the minimum -> the smallest |k| among ties
    idx = (e <= e.min(1, keepdim=True).values + 1e-4).float().argmax(1)
    return np.asarray(_ORDER, dtype=np.int8)[idx.numpy()]


def estimate_scroll(prev: np.ndarray, nxt: np.ndarray) -> int:
    """Scroll between two (240, 256, 3) frames (see estimate_scrolls)."""
    return int(estimate_scrolls(np.stack([prev, nxt]))[0])


def apply_scroll(frames: torch.Tensor, k: torch.Tensor, hud_rows: int = HUD_ROWS, fill: str = "edge",
                 period: int = TILE) -> torch.Tensor:
    """Shift the playfield of (B, C, H, W) frames left by k[b] pixels (right if negative).

    The HUD rows stay; the strip the camera reveals is filled as `fill` says (_source_columns) and the
    networks paint what it gets wrong. Works at any resolution if k, hud_rows and period are given in
    its pixels.
    """
    b, c, h, w = frames.shape
    k = k.to(frames.device).long().view(b, 1, 1, 1)
    x = torch.arange(w, device=frames.device).view(1, 1, 1, w)
    src = _source_columns(x, k, w, fill, period).expand(b, c, h - hud_rows, w)
    out = frames.clone()
    out[:, :, hud_rows:] = torch.gather(frames[:, :, hud_rows:], 3, src)
    return out


def shift_lowres(frames: torch.Tensor, k: torch.Tensor, factor: int = 4, hud_rows: int = HUD_ROWS,
                 fill: str = "edge") -> torch.Tensor:
    """The low-res version of `apply_scroll` from low-res frames alone: (B, C, H, W) shifted by k/factor
    low-res pixels (k in full-res pixels), linear interpolation for the fractional part.

    Exact for frames whose 4 sub-columns are alike and a close approximation otherwise: the denoiser
    is trained and run on this same prior, so it learns to correct the rest.
    """
    b, c, h, w = frames.shape
    kf = k.to(frames.device).float().view(b, 1, 1, 1) / factor
    q = torch.floor(kf)
    frac = kf - q
    x = torch.arange(w, device=frames.device).view(1, 1, 1, w)
    hud = hud_rows // factor
    play = frames[:, :, hud:]
    i0 = _source_columns(x, q.long(), w, fill, TILE // factor).expand(b, c, h - hud, w)
    i1 = _source_columns(x, q.long() + 1, w, fill, TILE // factor).expand(b, c, h - hud, w)
    out = frames.clone()
    out[:, :, hud:] = torch.gather(play, 3, i0) * (1 - frac) + torch.gather(play, 3, i1) * frac
    return out


def area_downsample(frames: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Exact factor x factor area average of (B, C, H, W) (the low-res space of the denoiser)."""
    return nn.functional.avg_pool2d(frames, factor)


class ScrollHead(nn.Module):
    """Classifies the next step's scroll from the low-res context, its past scrolls and the actions.

    The camera follows Mario once he passes a fixed screen column and then moves by his speed, so the
    scroll depends on where Mario is on screen to about a low-res pixel, how fast he moves (past
    scrolls plus his motion across the context frames) and what is pressed. Hence coordinate channels
    (CoordConv) and a 15x16 feature map kept whole rather than pooled away.
    """

    def __init__(self, context: int = 4, num_buttons: int = 6, channels: int = 32, hidden: int = 256):
        super().__init__()
        c = channels
        self.conv = nn.Sequential(                              # (B, 3*context + 2, 60, 64)
            nn.Conv2d(3 * context + 2, c, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 3, 2, 1), nn.SiLU(),            # 30x32
            nn.Conv2d(2 * c, 2 * c, 3, 2, 1), nn.SiLU(),        # 15x16
            nn.Conv2d(2 * c, 8, 1), nn.SiLU(), nn.Flatten(),    # 8*15*16
        )
        self.mlp = nn.Sequential(
            nn.Linear(8 * 15 * 16 + context * num_buttons + (context - 1) * NUM_SHIFTS, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, NUM_SHIFTS),
        )

    def forward(self, obs: torch.Tensor, act: torch.Tensor, past_scroll: torch.Tensor,
                past_known: torch.Tensor | None = None) -> torch.Tensor:
        """obs (B, context, 3, 60, 64) in [-1, 1]; act (B, context, 6) multi-hot; past_scroll (B, context-1)
        int in [-MAX_SHIFT, MAX_SHIFT]; past_known (B,) bool, False hides the past scrolls (training
        drops them so that the frames are read too) -> logits (B, NUM_SHIFTS) over k = -MAX_SHIFT..MAX_SHIFT."""
        b, _, _, h, w = obs.shape
        ys = torch.linspace(-1, 1, h, device=obs.device, dtype=obs.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(-1, 1, w, device=obs.device, dtype=obs.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
        feats = self.conv(torch.cat([obs.flatten(1, 2), ys, xs], 1))
        onehot = nn.functional.one_hot(past_scroll.long() + MAX_SHIFT, NUM_SHIFTS).float()
        if past_known is not None:
            onehot = onehot * past_known.view(b, 1, 1).float()
        return self.mlp(torch.cat([feats, act.flatten(1), onehot.flatten(1)], 1))
