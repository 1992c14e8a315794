"""The NES master palette: every pixel the console draws is one of these colours.

The 2C02 PPU outputs 64 palette entries, of which 54 distinct colours (the others repeat black); the
RGB values are the ones nes-py renders. A model that picks a palette index per pixel draws crisp
colours by construction, where a regression to RGB draws blends of what a pixel might be.
"""
from __future__ import annotations

import torch

# 0x00-0x3F without the repeated blacks, in PPU order
NES_PALETTE = (
    (124, 124, 124), (0, 0, 252), (0, 0, 188), (68, 40, 188), (148, 0, 132), (168, 0, 32), (168, 16, 0),
    (136, 20, 0), (80, 48, 0), (0, 120, 0), (0, 104, 0), (0, 88, 0), (0, 64, 88), (0, 0, 0),
    (188, 188, 188), (0, 120, 248), (0, 88, 248), (104, 68, 252), (216, 0, 204), (228, 0, 88), (248, 56, 0),
    (228, 92, 16), (172, 124, 0), (0, 184, 0), (0, 168, 0), (0, 168, 68), (0, 136, 136),
    (248, 248, 248), (60, 188, 252), (104, 136, 252), (152, 120, 248), (248, 120, 248), (248, 88, 152),
    (248, 120, 88), (252, 160, 68), (248, 184, 0), (184, 248, 24), (88, 216, 84), (88, 248, 152),
    (0, 232, 216), (120, 120, 120),
    (252, 252, 252), (164, 228, 252), (184, 184, 248), (216, 184, 248), (248, 184, 248), (248, 164, 192),
    (240, 208, 176), (252, 224, 168), (248, 216, 120), (216, 248, 120), (184, 248, 184), (184, 248, 216),
    (0, 252, 252), (248, 216, 248),
)


def palette_tensor(device=None) -> torch.Tensor:
    """(K, 3) the palette in the model's [-1, 1] range."""
    return torch.tensor(NES_PALETTE, dtype=torch.float32, device=device) / 127.5 - 1


def _keys(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3) int -> (...) one int per colour."""
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


_KEYS, _ORDER = torch.sort(_keys(torch.tensor(NES_PALETTE, dtype=torch.long)))


def palette_index(frames: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W) long: each pixel's palette colour (the nearest one for
    a pixel that is not exactly a palette colour)."""
    rgb = frames.detach().float().add(1).mul(127.5).round().clamp(0, 255).long().movedim(1, -1)   # (B,H,W,3)
    keys = _keys(rgb)
    pos = torch.searchsorted(_KEYS.to(keys.device), keys).clamp_max(len(_KEYS) - 1)
    idx = _ORDER.to(keys.device)[pos]
    off = _KEYS.to(keys.device)[pos] != keys
    if off.any():                      # not a palette colour (a blend): the nearest one
        pal = torch.tensor(NES_PALETTE, dtype=torch.float32, device=keys.device)
        idx[off] = torch.cdist(rgb[off].float(), pal).argmin(1)
    return idx
