"""The end model: does the frame just drawn end the episode?

The real game ends an episode on the step Mario touches an enemy, falls into a pit or lava, or takes
the flag. The denoiser draws such frames (one ends nearly every training episode), but a dream that
only draws frames never ends: Mario runs through goombas for as long as the player holds →. Like
DIAMOND's reward/end model, a separate small network reads the dream's frames and says when the game
would be over, so the dream env can return `terminated`.

It is a small CNN on a 64x64 full-res window of the last two frames centred on Mario where the last
frame shows him (models.mario_sprite; else where the new frame does, else the playfield's centre):
the end is a few pixels around him (at 60x64 he is a 4x4 blob), and a window that follows him lets a
few hundred ends teach it what touching a goomba looks like anywhere on screen.
Trained by `scripts/train_end_model.py` on the last steps of real episodes; its file sits in the
checkpoint folder beside the denoiser's (`end_model.safetensors`, config in model.json).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from smbwm.models.mario_sprite import find_mario
from smbwm.models.motion import HUD_ROWS

WINDOW = 64        # px, full res: Mario (16 px) and what touches him


@dataclass
class EndModelConfig:
    channels: int = 32             # width of the first layer; later layers are twice as wide
    # P(end) above which the dream ends the episode (chosen on held-out real episodes by the trainer)
    threshold: float = 0.5


def _uint8(frames: torch.Tensor) -> np.ndarray:
    """(B,3,H,W) in [-1,1] -> (B,H,W,3) uint8."""
    return frames.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).movedim(1, -1).cpu().numpy()


class EndModel(nn.Module):
    def __init__(self, cfg: EndModelConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.channels
        self.net = nn.Sequential(
            nn.Conv2d(6, c, 3, 1, 1), nn.SiLU(),                 # (B, c, 64, 64)
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.SiLU(),             # (B, 2c, 32, 32)
            nn.Conv2d(2 * c, 2 * c, 4, 2, 1), nn.SiLU(),         # (B, 2c, 16, 16)
            nn.Conv2d(2 * c, 2 * c, 4, 2, 1), nn.SiLU(),         # (B, 2c, 8, 8)
        )
        self.head = nn.Linear(2 * c, 1)

    @staticmethod
    def prepare(last_full: torch.Tensor, full: torch.Tensor, margin: int = 0) -> torch.Tensor:
        """Two full-res frames (B,3,240,256) in [-1,1] -> the network's input (B,6,64,64): both frames in
        the window around Mario. `margin` widens the window on every side (training crops it at random)."""
        h, w = last_full.shape[-2:]
        _, cx, cy = find_mario(_uint8(last_full))
        if not np.isfinite(cx).all():              # the new frame is searched only where the last has no Mario
            _, nx, ny = find_mario(_uint8(full))
            cx = np.where(np.isfinite(cx), cx, np.where(np.isfinite(nx), nx, w / 2))
            cy = np.where(np.isfinite(cy), cy, np.where(np.isfinite(ny), ny, (h + HUD_ROWS) / 2))
        size = WINDOW + 2 * margin
        x0 = np.clip(np.round(cx - size / 2), 0, w - size).astype(int)
        y0 = np.clip(np.round(cy - size / 2), HUD_ROWS, h - size).astype(int)
        both = torch.cat([last_full, full], 1).float()                                    # (B, 6, 240, 256)
        return torch.stack([both[i, :, y:y + size, x:x + size] for i, (x, y) in enumerate(zip(x0, y0))])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prepared input (B,6,64,64) -> end logits (B,)."""
        return self.head(self.net(x).amax((2, 3))).squeeze(1)

    @torch.no_grad()
    def end_prob(self, last_full: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        """P(the episode ends with the step from last_full to full), (B,)."""
        return torch.sigmoid(self(self.prepare(last_full, full)))
