"""Upsampler 60x64 -> 240x256, cheap enough for play speed on a 2-core CPU.

A DIAMOND-size upsampler is a diffusion UNet at 240x256 and costs ~1-2 s per pass here. Ours is one
deterministic pass that never convolves at full resolution: the full-res prior (the previous full
frame shifted by the camera scroll, which already holds every sharp tile edge) is pixel-unshuffled
4x into 48 channels at 60x64, stacked with the predicted low-res frame and the low-res correction it
asks for, and a small ResNet at 60x64 outputs 48 channels that pixel-shuffle back into a full-res
correction of the prior. Sharp detail comes from the prior; the network paints what moved
(Mario, enemies) and the strip the scroll reveals, guided by the low-res prediction.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from smbwm.models.motion import area_downsample

FACTOR = 4


@dataclass
class UpsamplerConfig:
    channels: int = 64
    blocks: int = 4
    lowres_noise: float = 0.05     # train on a slightly noisy low-res input: the denoiser's is not exact
    # Mario and the revealed strip are a few hundred of the 61,440 pixels: weigh the pixels the prior
    # gets wrong (dilated by a pixel) 1 + motion_weight times, or a faint ghost of him costs nearly nothing.
    motion_weight: float = 0.0


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class Upsampler(nn.Module):
    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        self.cfg = cfg
        unshuffled = 3 * FACTOR * FACTOR
        c = cfg.channels
        self.conv_in = nn.Conv2d(unshuffled + 6, c, 3, padding=1)
        self.body = nn.Sequential(*[_Block(c) for _ in range(cfg.blocks)])
        self.conv_out = nn.Conv2d(c, unshuffled, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)   # starts as "the prior"
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, prior_full: torch.Tensor, low: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """prior_full (B,3,240,256), low (B,3,60,64), both in [-1,1] -> full frame (B,3,240,256).
        Training uses clamp=False: a clamped output has no gradient where it saturates, and an
        upsampler pushed out of range once could then never come back (seen at step ~3200 of a run)."""
        correction_low = low - area_downsample(prior_full, FACTOR)
        x = torch.cat([F.pixel_unshuffle(prior_full, FACTOR), low, correction_low], 1)
        x = self.conv_in(x.contiguous(memory_format=torch.channels_last))
        y = F.pixel_shuffle(self.conv_out(self.body(x)).float(), FACTOR)
        out = prior_full + y
        return out.clamp(-1, 1) if clamp else out

    def loss(self, prior_full: torch.Tensor, low: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if self.cfg.lowres_noise > 0:
            low = low + self.cfg.lowres_noise * torch.rand(low.shape[0], 1, 1, 1, device=low.device) * torch.randn_like(low)
        pred = self(prior_full, low, clamp=False)
        err = (pred - target).abs().mean(1, keepdim=True) + ((pred - target) ** 2).mean(1, keepdim=True)  # (B,1,H,W)
        if self.cfg.motion_weight > 0:
            changed = ((target - prior_full).abs().amax(1, keepdim=True) > 0.1).float()
            w = 1 + self.cfg.motion_weight * F.max_pool2d(changed, 3, 1, 1)
            loss = (err * w).sum() / w.sum()
        else:
            loss = err.mean()
        return loss, {"loss_upsampler": loss.item()}
