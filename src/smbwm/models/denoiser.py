"""EDM denoiser of the next low-res frame, conditioned on 4 past frames, the actions and the scroll.

Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models", EDM):
D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma)), Table 1, with
log-normal training noise and loss weight (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2.

What is denoised is not the frame but its *residual* over the motion-compensated prior
(the last frame shifted by the camera scroll, models.motion.shift_lowres): most of a Mario frame is
the previous one moved sideways, so the network only has to draw Mario, enemies and the revealed
strip. Frames are in [-1, 1]; `next = clamp(prior + residual, -1, 1)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from smbwm import actions as A
from smbwm.models.blocks import FourierFeatures, UNet
from smbwm.models.motion import MAX_SHIFT, NUM_SHIFTS, ScrollHead, shift_lowres
from smbwm.models.sampler import Generators, SamplerConfig, edm_loss_weight, edm_precond, sample_residual


@dataclass
class DenoiserConfig:
    context: int = 4                                  # past frames seen (DIAMOND: 4)
    channels: list[int] = field(default_factory=lambda: [32, 64, 96, 96])
    depths: list[int] = field(default_factory=lambda: [1, 1, 2, 2])
    attn_levels: list[bool] = field(default_factory=lambda: [False, False, True, True])
    cond_dim: int = 128
    sigma_data: float = 0.5
    sigma_offset_noise: float = 0.1                   # offset noise: a per-channel constant
    loc_train_sigma: float = -0.4                     # log-normal training noise (EDM: P_mean, P_std)
    scale_train_sigma: float = 1.2
    # The one-step sampler calls the denoiser only at sigma_max, which the log-normal draws in ~5 % of
    # samples: this fraction of each batch is trained exactly there instead.
    sigma_max_fraction: float = 0.0
    sigma_max: float = 5.0                            # the trainer sets it to its sampler's sigma_max
    noise_previous_obs: float = 0.3                   # max sigma of noise added to the context (drift)
    # Mario is ~16 of the 3840 low-res pixels: weight the pixels this step changes (target vs the clean
    # shifted last frame, dilated by a pixel) 1 + motion_weight times in the denoising loss.
    motion_weight: float = 0.0
    # Mario's box (the game's position of him in the last context frame and in the target, when the data
    # has it) weighs another mario_weight: his jumps are what the dream draws worst.
    mario_weight: float = 0.0
    scroll_channels: int = 32                         # the scroll head's width
    scroll_loss_weight: float = 0.1
    past_scroll_dropout: float = 0.25                 # hide the past scrolls from the scroll head this often
    # What the prior shows in the strip the camera reveals (models.motion._source_columns): "edge"
    # repeats the edge column, "tile" copies whole tiles back. Also the upsampler's full-res prior.
    reveal_fill: str = "edge"


class Denoiser(nn.Module):
    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.cond_dim
        self.noise_emb = FourierFeatures(d)
        self.noise_cond_emb = FourierFeatures(d)
        self.button_emb = nn.Linear(A.NUM_PLAYING_BUTTONS, d // 4, bias=False)  # sum of button embeddings
        self.scroll_emb = nn.Embedding(NUM_SHIFTS, d)
        self.cond_mlp = nn.Sequential(nn.Linear(3 * d + cfg.context * (d // 4), d), nn.SiLU(), nn.Linear(d, d))
        in_ch = 3 * (cfg.context + 2)                     # noisy residual, context frames, prior
        self.unet = UNet(in_ch, 3, cfg.channels, cfg.depths, d, cfg.attn_levels)
        self.scroll_head = ScrollHead(cfg.context, A.NUM_PLAYING_BUTTONS, cfg.scroll_channels)

    def precond(self, sigma: torch.Tensor):
        return edm_precond(sigma, self.cfg.sigma_data)

    def condition(self, c_noise: torch.Tensor, sigma_cond: torch.Tensor, act: torch.Tensor,
                  scroll: torch.Tensor) -> torch.Tensor:
        """act (B, context, 6) multi-hot float; scroll (B,) int -> (B, cond_dim)."""
        a = self.button_emb(act).flatten(1)                                    # (B, context * d/4)
        c_cond = (sigma_cond.clamp_min(1e-5)).log() / 4
        k = self.scroll_emb(scroll.long().clamp(-MAX_SHIFT, MAX_SHIFT) + MAX_SHIFT)
        return self.cond_mlp(torch.cat([self.noise_emb(c_noise), self.noise_cond_emb(c_cond), k, a], 1))

    def forward(self, noisy: torch.Tensor, sigma: torch.Tensor, obs: torch.Tensor, prior: torch.Tensor,
                act: torch.Tensor, scroll: torch.Tensor, sigma_cond: torch.Tensor | None = None) -> torch.Tensor:
        """The denoised residual D(noisy; sigma).
        noisy (B,3,H,W); sigma (B,); obs (B,context,3,H,W) in [-1,1]; prior (B,3,H,W); act (B,context,6)."""
        return self.denoise(noisy, sigma, obs, prior, act, scroll, sigma_cond)[0]

    def denoise(self, noisy: torch.Tensor, sigma: torch.Tensor, obs: torch.Tensor, prior: torch.Tensor,
                act: torch.Tensor, scroll: torch.Tensor, sigma_cond: torch.Tensor | None = None, keep: int = 0,
                deep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """forward's D and the UNet's deep features (UNet.run): keep > 0 without `deep` keeps them, with
        `deep` reuses them and runs only the UNet's top `keep` levels (the sampler's reuse_deep)."""
        if not 0 <= keep <= len(self.cfg.channels):
            raise ValueError(f"reuse_deep must be 0..{len(self.cfg.channels)} (the UNet's levels), got {keep}")
        if sigma_cond is None:
            sigma_cond = torch.zeros_like(sigma)
        c_in, c_skip, c_out, c_noise = self.precond(sigma)
        cond = self.condition(c_noise, sigma_cond, act, scroll)
        x = torch.cat([c_in * noisy, obs.flatten(1, 2), prior], 1)
        f, kept = self.unet.run(x.contiguous(memory_format=torch.channels_last), cond, keep, deep)
        return c_skip * noisy + c_out * f.float(), kept

    def prior(self, obs: torch.Tensor, scroll: torch.Tensor) -> torch.Tensor:
        """The last context frame shifted by the scroll (B, context, 3, H, W) -> (B, 3, H, W)."""
        return shift_lowres(obs[:, -1], scroll, fill=self.cfg.reveal_fill)

    def sample_sigma(self, n: int, device) -> torch.Tensor:
        c = self.cfg
        sigma = (torch.randn(n, device=device) * c.scale_train_sigma + c.loc_train_sigma).exp()
        if c.sigma_max_fraction > 0:
            at_max = torch.rand(n, device=device) < c.sigma_max_fraction
            sigma = torch.where(at_max, torch.full_like(sigma, c.sigma_max), sigma)
        return sigma

    def noise_context(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time noise on the context (B,context,3,H,W) and its sigma (B,): the model learns to
        repair its own drift."""
        b, sigma_max = obs.shape[0], self.cfg.noise_previous_obs
        if sigma_max <= 0:
            return obs, torch.zeros(b, device=obs.device)
        sigma = torch.rand(b, device=obs.device) * sigma_max
        return obs + sigma.view(b, 1, 1, 1, 1) * torch.randn_like(obs), sigma

    def loss(self, obs: torch.Tensor, act: torch.Tensor, scroll: torch.Tensor, past_scroll: torch.Tensor,
             target: torch.Tensor, mario: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """obs (B,context,3,H,W), act (B,context,6), scroll (B,) the true next scroll, past_scroll
        (B,context-1), target (B,3,H,W) next frame; all frames in [-1, 1]; mario (B,2,2) or None: Mario's
        low-res (row, col) in the last context frame and the target, NaN where unknown."""
        b, dev = obs.shape[0], obs.device
        c = self.cfg
        pixel_w = self.motion_pixels(obs, scroll, target)
        if mario is not None and c.mario_weight > 0:
            pixel_w = pixel_w + c.mario_weight * mario_box(mario.to(dev), target.shape[-2:])
        obs, sigma_cond = self.noise_context(obs)
        prior = self.prior(obs, scroll)
        residual = target - prior
        sigma = self.sample_sigma(b, dev)
        noise = torch.randn_like(residual) + c.sigma_offset_noise * torch.randn(b, 3, 1, 1, device=dev)
        noisy = residual + sigma.view(b, 1, 1, 1) * noise
        denoised = self(noisy, sigma, obs, prior, act, scroll, sigma_cond)
        weight = edm_loss_weight(sigma, c.sigma_data)
        diff = (((denoised - residual) ** 2).mean(1, keepdim=True) * pixel_w).sum((1, 2, 3)) / pixel_w.sum((1, 2, 3))
        loss_denoise = (weight * diff).mean()   # = ||F - F_target||^2: O(1) at every sigma (EDM eq. 8)
        loss_scroll, acc = self.scroll_loss(obs, act, scroll, past_scroll)
        loss = loss_denoise + c.scroll_loss_weight * loss_scroll
        return loss, {"loss_denoise": loss_denoise.item(), "loss_scroll": loss_scroll.item(),
                      "scroll_acc": acc.item(), "mse": diff.mean().item()}

    @torch.no_grad()
    def motion_pixels(self, obs: torch.Tensor, scroll: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-pixel loss weights (B,1,H,W): 1, and 1 + motion_weight where the clean shifted last frame
        does not already show the target (moving sprites, the revealed strip)."""
        w = torch.ones_like(target[:, :1])
        if self.cfg.motion_weight <= 0:
            return w
        changed = ((target - self.prior(obs, scroll)).abs().amax(1, keepdim=True) > 0.1).float()
        return w + self.cfg.motion_weight * F.max_pool2d(changed, 3, 1, 1)

    def scroll_loss(self, obs: torch.Tensor, act: torch.Tensor, scroll: torch.Tensor,
                    past_scroll: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-entropy of the scroll head on the true scroll, and its accuracy (obs as in `loss`)."""
        # Teacher-forced past scrolls make "same as before" nearly always right, and a dream that once
        # stops scrolling would never start again; hiding them often makes the head read Mario in the frames.
        known = torch.rand(obs.shape[0], device=obs.device) >= self.cfg.past_scroll_dropout
        logits = self.scroll_head(obs, act, past_scroll, known).float()
        with torch.no_grad():
            acc = (logits.argmax(1) - MAX_SHIFT == scroll).float().mean()
        return F.cross_entropy(logits, scroll.long() + MAX_SHIFT), acc

    @torch.no_grad()
    def sample_next(self, obs: torch.Tensor, act: torch.Tensor, scroll: torch.Tensor, sampler: SamplerConfig,
                    generator: Generators = None) -> torch.Tensor:
        """The next low-res frame (B,3,H,W) in [-1,1] given the context, actions and this step's scroll."""
        prior = self.prior(obs, scroll)
        if sampler.context_noise > 0:
            obs = obs + sampler.context_noise * torch.randn_like(obs)
        sigma_cond = torch.full((obs.shape[0],), sampler.context_noise, device=obs.device)
        keep, deep = sampler.reuse_deep, None

        def denoise(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            nonlocal deep                      # the first call's deep features serve the later ones
            d, kept = self.denoise(x, s, obs, prior, act, scroll, sigma_cond, keep, deep)
            deep = kept if deep is None else deep
            return d
        residual = sample_residual(denoise, prior.shape, sampler, obs.device, generator)
        return (prior + residual.float()).clamp(-1, 1)

    def predict_scroll(self, obs: torch.Tensor, act: torch.Tensor, past_scroll: torch.Tensor) -> torch.Tensor:
        return self.scroll_head(obs, act, past_scroll).float().argmax(1) - MAX_SHIFT


def mario_box(mario: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, n, 2) low-res (row, col) centres, NaN where unknown -> (B, 1, H, W) 1 inside any of the boxes
    around them: 5 columns (20 px), rows from 4 above to 2 below (big Mario is 32 px tall above his feet)."""
    rows = torch.arange(size[0], device=mario.device, dtype=torch.float32).view(1, 1, -1, 1)
    cols = torch.arange(size[1], device=mario.device, dtype=torch.float32).view(1, 1, 1, -1)
    r, c = mario[..., 0, None, None].round(), mario[..., 1, None, None].round()        # (B, n, 1, 1)
    inside = (rows >= r - 4) & (rows <= r + 2) & ((cols - c).abs() <= 2)               # NaN compares False
    return inside.any(1, keepdim=True).float()
