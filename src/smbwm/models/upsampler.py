"""Upsampler 60x64 -> 240x256, cheap enough for play speed on a 2-core CPU.

A DIAMOND-size upsampler is a diffusion UNet at 240x256 and costs ~1-2 s per pass here. Ours never
convolves at full resolution: the full-res prior (the previous full frame shifted by the camera
scroll, which already holds every sharp tile edge) is pixel-unshuffled 4x into 48 channels at 60x64,
stacked with the predicted low-res frame and the low-res correction it asks for, and a small ResNet
at 60x64 outputs 48 channels that pixel-shuffle back into a full-res correction of the prior. Sharp
detail comes from the prior; the network paints what moved (Mario, enemies) and the strip the
scroll reveals, guided by the low-res prediction.

Two kinds, chosen by `diffusion`:
- deterministic (one pass): trained on L1 + L2, it draws the *average* of the sprites a 4x4 low-res
  blob could be, so a moving Mario comes out as a ghost even from the true low-res frame;
- diffusion: the same network, also given the noisy full-res residual (unshuffled, 48 more channels)
  and its noise level, is an EDM denoiser of `next - prior`; a few sampling steps (models.sampler)
  draw *one* sprite instead of the average. Each step costs one pass of the deterministic kind.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from smbwm.models.blocks import FourierFeatures
from smbwm.models.motion import area_downsample
from smbwm.models.palette import NES_PALETTE, palette_index, palette_tensor
from smbwm.models.sampler import Generators, SamplerConfig, edm_loss_weight, edm_precond, sample_residual

FACTOR = 4


@dataclass
class UpsamplerConfig:
    channels: int = 64
    blocks: int = 4
    lowres_noise: float = 0.05     # train on a slightly noisy low-res input: the denoiser's is not exact
    # Mario and the revealed strip are a few hundred of the 61,440 pixels: weigh the pixels the prior
    # gets wrong (dilated by a pixel) 1 + motion_weight times, or a faint ghost of him costs nearly nothing.
    motion_weight: float = 0.0
    diffusion: bool = False        # an EDM denoiser of the full-res residual, sampled (see the docstring)
    sigma_data: float = 0.5
    loc_train_sigma: float = -0.4  # log-normal training noise (EDM: P_mean, P_std)
    scale_train_sigma: float = 1.2
    sigma_max_fraction: float = 0.25   # share trained exactly at sigma_max, the first sampling step's only call
    sample_steps: int = 2          # sampling: Euler steps from sigma_max down to sigma_min (Karras schedule)
    sigma_max: float = 5.0
    sigma_min: float = 0.4         # the last step's noise level: high enough for the step to pick one sprite
    # > 0: diffuse only the 4x4 cells (and their neighbours) where the low-res frame differs from the
    # prior by more than this; elsewhere the frame is the prior as is. Mario and the revealed strip are
    # ~1 % of the frame: the network then spends itself there instead of on removing noise from sky.
    mask_threshold: float = 0.0
    # Pick each full-res pixel's colour from the NES palette (models.palette): logits per colour,
    # trained with cross-entropy, argmax at play. A pixel is one palette colour, never a blend of two.
    palette: bool = False
    keep_prior: float = 4.0        # initial logit bonus of the prior's own colour: the net starts as "the prior"


class _Block(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = x if emb is None else x + emb
        return x + self.conv2(F.silu(self.conv1(F.silu(h))))


class Upsampler(nn.Module):
    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        self.cfg = cfg
        unshuffled = 3 * FACTOR * FACTOR
        c = cfg.channels
        self.conv_in = nn.Conv2d(unshuffled * (2 if cfg.diffusion else 1) + 6, c, 3, padding=1)
        self.body = nn.ModuleList([_Block(c) for _ in range(cfg.blocks)])
        if cfg.palette:
            if cfg.diffusion:
                raise ValueError("model.upsampler: palette and diffusion are two different kinds; pick one")
            self.palette_out = nn.Linear(c, len(NES_PALETTE) * FACTOR * FACTOR)     # a cell's 16 pixels' logits
            nn.init.zeros_(self.palette_out.weight)
            nn.init.zeros_(self.palette_out.bias)
            self.keep_prior = nn.Parameter(torch.tensor(float(cfg.keep_prior)))
            self.register_buffer("colours", palette_tensor(), persistent=False)       # (K, 3)
            return
        self.conv_out = nn.Conv2d(c, unshuffled, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)   # starts as "the prior"
        nn.init.zeros_(self.conv_out.bias)
        if cfg.diffusion:
            self.noise_emb = FourierFeatures(c)
            self.noise_mlp = nn.Sequential(nn.Linear(c, c), nn.SiLU(), nn.Linear(c, c))

    def from_deterministic(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A deterministic upsampler's weights as a start for this diffusion or palette one. Diffusion:
        the noisy-residual inputs get zero weights and the noise-level embedding outputs zero, so the
        network begins as the deterministic one. Palette: the body is kept, the new head starts at
        "keep the prior's colour"."""
        own = self.state_dict()
        if self.cfg.palette and "conv_out.weight" in state:
            return {k: v for k, v in state.items() if not k.startswith("conv_out.")} | \
                {k: v for k, v in own.items() if k.startswith("palette_out.") or k == "keep_prior"}
        w = state["conv_in.weight"]
        if not self.cfg.diffusion or own["conv_in.weight"].shape[1] != w.shape[1] + 3 * FACTOR * FACTOR:
            return state                   # nothing to adapt: load_state_dict reports what does not fit
        out = dict(state, **{k: v for k, v in own.items() if k.startswith("noise_")})
        out["conv_in.weight"] = torch.cat([w, w.new_zeros(w.shape[0], own["conv_in.weight"].shape[1] - w.shape[1], *w.shape[2:])], 1)
        out["noise_mlp.2.weight"] = torch.zeros_like(own["noise_mlp.2.weight"])
        out["noise_mlp.2.bias"] = torch.zeros_like(own["noise_mlp.2.bias"])
        return out

    def _features(self, prior_full: torch.Tensor, low: torch.Tensor, noisy: torch.Tensor | None = None,
                  c_noise: torch.Tensor | None = None) -> torch.Tensor:
        """-> (B,c,60,64) the body's features; `noisy` (B,3,240,256) the scaled noisy residual."""
        correction_low = low - area_downsample(prior_full, FACTOR)
        parts = [F.pixel_unshuffle(prior_full, FACTOR), low, correction_low]
        if noisy is not None:
            parts.append(F.pixel_unshuffle(noisy, FACTOR))                       # (B,48,60,64)
        h = self.conv_in(torch.cat(parts, 1).contiguous(memory_format=torch.channels_last))
        emb = None
        if c_noise is not None:
            emb = self.noise_mlp(self.noise_emb(c_noise))[:, :, None, None].to(h.dtype)   # (B,c,1,1)
        for block in self.body:
            h = block(h, emb)
        return h

    def _net(self, prior_full: torch.Tensor, low: torch.Tensor, noisy: torch.Tensor | None = None,
             c_noise: torch.Tensor | None = None) -> torch.Tensor:
        """-> (B,3,240,256) correction of the prior."""
        return F.pixel_shuffle(self.conv_out(self._features(prior_full, low, noisy, c_noise)).float(), FACTOR)

    def _cells(self, prior_full: torch.Tensor, low: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Palette kind: the 4x4 cells it draws (B,60,64) bool (the changed ones, or all) and their
        logits (N,K,16) (N cells, K colours, 16 pixels)."""
        cells = self.changed_cells(prior_full, low)
        if cells is None:
            cells = torch.ones_like(low[:, 0], dtype=torch.bool)
        h = self._features(prior_full, low).permute(0, 2, 3, 1)[cells]                      # (N, c)
        logits = self.palette_out(h).float().view(len(h), len(NES_PALETTE), FACTOR * FACTOR)
        prior_idx = self._cell_pixels(palette_index(prior_full)[:, None], cells)            # (N, 16)
        keep = self.keep_prior.expand(prior_idx.shape).to(logits.dtype)
        return cells, logits.scatter_add(1, prior_idx[:, None], keep[:, None])

    @staticmethod
    def _cell_pixels(x: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """(B,C,240,256) -> (N, C*16) the pixels of the chosen cells, channel-major (pixel_unshuffle's order)."""
        return F.pixel_unshuffle(x.float(), FACTOR).permute(0, 2, 3, 1)[cells].to(x.dtype)

    def changed_cells(self, prior_full: torch.Tensor, low: torch.Tensor) -> torch.Tensor | None:
        """(B,60,64) bool: the cells where the low-res frame differs from the prior, and their
        neighbours; None when mask_threshold is 0 (every cell is drawn)."""
        if self.cfg.mask_threshold <= 0:
            return None
        differs = (low - area_downsample(prior_full, FACTOR)).abs().amax(1, keepdim=True) > self.cfg.mask_threshold
        return F.max_pool2d(differs.float(), 3, 1, 1)[:, 0] > 0

    def change_mask(self, prior_full: torch.Tensor, low: torch.Tensor) -> torch.Tensor | None:
        """(B,1,240,256) 1 where the upsampler draws, 0 where the prior stands; None: everywhere."""
        cells = self.changed_cells(prior_full, low)
        return None if cells is None else F.interpolate(cells[:, None].float(), scale_factor=FACTOR, mode="nearest")

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor, prior_full: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        """D(noisy; sigma): the denoised full-res residual `next - prior_full` (diffusion kind)."""
        c_in, c_skip, c_out, c_noise = edm_precond(sigma, self.cfg.sigma_data)
        return c_skip * noisy + c_out * self._net(prior_full, low, c_in * noisy, c_noise)

    def forward(self, prior_full: torch.Tensor, low: torch.Tensor, clamp: bool = True,
                generator: Generators = None) -> torch.Tensor:
        """prior_full (B,3,240,256), low (B,3,60,64), both in [-1,1] -> full frame (B,3,240,256).
        Training uses clamp=False: a clamped output has no gradient where it saturates, and an
        upsampler pushed out of range once could then never come back (seen at step ~3200 of a run)."""
        if self.cfg.diffusion:
            c = self.cfg
            steps = SamplerConfig(num_steps=c.sample_steps, sigma_min=c.sigma_min, sigma_max=c.sigma_max)
            m = self.change_mask(prior_full, low)
            if m is None:
                denoise = lambda x, s: self.denoise(x, s, prior_full, low)           # noqa: E731
            else:      # D is 0 outside the mask, so each Euler step shrinks the noise there to 0
                denoise = lambda x, s: m * self.denoise(m * x, s, prior_full, low)   # noqa: E731
            out = prior_full + sample_residual(denoise, tuple(prior_full.shape), steps, prior_full.device, generator)
        elif self.cfg.palette:
            cells, logits = self._cells(prior_full, low)
            un = F.pixel_unshuffle(prior_full.float(), FACTOR).permute(0, 2, 3, 1).contiguous()    # (B,60,64,48)
            un[cells] = self.colours[logits.argmax(1)].transpose(1, 2).reshape(len(logits), -1)   # (N, 3*16)
            out = F.pixel_shuffle(un.permute(0, 3, 1, 2), FACTOR)
        else:
            out = prior_full + self._net(prior_full, low)
        return out.clamp(-1, 1) if clamp else out

    def loss(self, prior_full: torch.Tensor, low: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict]:
        c = self.cfg
        b = low.shape[0]
        if c.lowres_noise > 0:
            low = low + c.lowres_noise * torch.rand(b, 1, 1, 1, device=low.device) * torch.randn_like(low)
        w = torch.ones_like(target[:, :1])
        if c.motion_weight > 0:
            changed = ((target - prior_full).abs().amax(1, keepdim=True) > 0.1).float()
            w = w + c.motion_weight * F.max_pool2d(changed, 3, 1, 1)
        if c.diffusion:
            residual = target - prior_full
            sigma = (torch.randn(b, device=low.device) * c.scale_train_sigma + c.loc_train_sigma).exp()
            sigma = torch.where(torch.rand(b, device=low.device) < c.sigma_max_fraction,
                                torch.full_like(sigma, c.sigma_max), sigma)
            noisy = residual + sigma.view(b, 1, 1, 1) * torch.randn_like(residual)
            m = self.change_mask(prior_full, low)
            if m is not None:                  # as sampled: noise and loss only where the diffusion draws
                noisy, residual, w = noisy * m, residual * m, w * m
            denoised = self.denoise(noisy, sigma, prior_full, low)
            err = ((denoised - residual) ** 2).mean(1, keepdim=True)                  # (B,1,H,W)
            per_frame = (err * w).sum((1, 2, 3)) / w.sum((1, 2, 3)).clamp_min(1.0)
            loss = (edm_loss_weight(sigma, c.sigma_data) * per_frame).mean()
        elif c.palette:                        # cross-entropy on the cells it draws; the rest is the prior
            cells, logits = self._cells(prior_full, low)
            err = F.cross_entropy(logits, self._cell_pixels(palette_index(target)[:, None], cells), reduction="none")
            w = self._cell_pixels(w, cells)                                                   # (N, 16)
            loss = (err * w).sum() / w.sum().clamp_min(1.0)
        else:
            pred = self(prior_full, low, clamp=False)
            err = (pred - target).abs().mean(1, keepdim=True) + ((pred - target) ** 2).mean(1, keepdim=True)
            loss = (err * w).sum() / w.sum()
        return loss, {"loss_upsampler": loss.item()}
