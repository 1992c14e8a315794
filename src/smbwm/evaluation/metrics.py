"""Fidelity metrics on uint8 frames: PSNR, SSIM (Wang et al. 2004, 11x11 Gaussian window, sigma 1.5)
and controllability (camera scroll of dream vs real, estimated from the images)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB over all pixels of two uint8 arrays of the same shape (one MSE over the set)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-10)))


def psnr_per_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) x2 -> (N,) PSNR of each frame (100 dB for identical frames)."""
    d = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    mse = (d ** 2).reshape(len(d), -1).mean(1)
    return 10 * np.log10(255.0 ** 2 / np.maximum(mse, 255.0 ** 2 * 1e-10))


def _gauss(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    return (g / g.sum()).float()


@torch.no_grad()
def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of (N, H, W, 3) uint8 frames (per channel, valid region, data range 255)."""
    x = torch.as_tensor(np.asarray(a)).float().movedim(-1, -3).reshape(-1, 1, *np.asarray(a).shape[-3:-1])
    y = torch.as_tensor(np.asarray(b)).float().movedim(-1, -3).reshape(-1, 1, *np.asarray(b).shape[-3:-1])
    g = _gauss()
    w2 = (g[:, None] * g[None, :])[None, None]
    f = lambda t: F.conv2d(t, w2)                                      # noqa: E731
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = f(x), f(y)
    sxx, syy, sxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def controllability(dream_scroll: np.ndarray, real_scroll: np.ndarray) -> dict:
    """Agreement of the camera scroll of dream and real under the same actions (pixels per step)."""
    d, r = np.asarray(dream_scroll, np.int64), np.asarray(real_scroll, np.int64)
    moving = r != 0
    return {
        "steps": int(len(r)),
        "steps_real_scrolls": int(moving.sum()),
        "direction_agreement": float((np.sign(d[moving]) == np.sign(r[moving])).mean()) if moving.any() else None,
        "direction_agreement_all": float((np.sign(d) == np.sign(r)).mean()) if len(r) else None,
        "magnitude_mae_px": float(np.abs(d - r).mean()) if len(r) else None,
    }


def agreement_by_step(dream_scroll: np.ndarray, real_scroll: np.ndarray, spans: list[tuple[int, int]]) -> dict:
    """Direction agreement on the steps where the real game scrolls, per span of rollout steps:
    (N, T) scrolls of N rollouts, spans of 1-based steps (first, last) -> {"first-last": agreement or None}.
    Shows where open-loop control is lost: a model that drifts agrees early and not late."""
    d, r = np.asarray(dream_scroll), np.asarray(real_scroll)
    return {f"{first}-{last}": controllability(d[:, first - 1:last].ravel(), r[:, first - 1:last].ravel())["direction_agreement"]
            for first, last in spans}
