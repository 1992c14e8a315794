"""Sampling the denoiser: Karras sigma schedule, Euler or Heun steps with optional churn.

Karras et al. 2022, Algorithm 2 (the stochastic sampler; churn 0 gives the deterministic
Algorithm 1): t_i from eq. 5, gamma_i = min(S_churn / N, sqrt(2) - 1) on [S_tmin, S_tmax], an Euler
step, and Heun's 2nd-order correction on every step but the last.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from smbwm.utils.paths import DEFAULT_SAMPLER, SAMPLER_PRESETS, sampler_presets


@dataclass
class SamplerConfig:
    num_steps: int = 3
    order: int = 1                # 1: Euler, 2: Heun
    sigma_min: float = 2e-3
    sigma_max: float = 5.0
    rho: float = 7.0
    s_churn: float = 0.0
    s_tmin: float = 0.0
    s_tmax: float = float("inf")
    s_noise: float = 1.0
    context_noise: float = 0.0    # sigma of noise added to the context at sampling (matches training)
    # Redraw a frame that loses or doubles the sharp Mario the last frame showed (models.mario_sprite) up
    # to this many times, keeping the draw closest to one Mario: a sample does that now and then, and the
    # next steps copy whatever the last frame shows (WorldModel.step).
    mario_retries: int = 0
    # Where the last frame shows no Mario, redraw a frame still without exactly one this many times
    # (capped by mario_retries, whose 0 turns the whole check off): a Mario the dream lost can come
    # back, while a pit or a pipe, where the game has none, costs only these few extra draws per frame.
    mario_rescue: int = 0
    # Rescue only while Mario has been gone for at most this many drawn frames (0: always). Where the dream
    # has lost him for good, every frame would otherwise be drawn 1 + mario_rescue times and play slows
    # down. The caller counts the frames (WorldModel.step's lost_steps; the env and Rollout do).
    mario_rescue_steps: int = 0
    # The game's camera follows Mario and never pushes him back (it scrolls by as much as he runs, and not
    # while he stands at a wall). A frame whose one Mario stands further left than the last frame's by more
    # than this many pixels while the camera scrolled right (he ran into a wall the scroll head ran past)
    # is drawn again with the camera moved by only as much as he moved (0: off).
    camera_follow: int = 0
    # Snap each drawn frame onto the checkpoint's tile book (models.tiles): an 8x8 cell that differs from
    # the nearest 8x8 patch the real game shows often in at most this many of its 64 pixels becomes that
    # patch. 0 (or a checkpoint without a book): frames as drawn.
    tile_snap: int = 0
    # The same snap for the HUD's cells alone (the top rows: score, coins, world, time), within this many
    # pixels: its digits are 8x8 font tiles, and a few wrong pixels a frame garble them within seconds.
    # The playfield is left as drawn. tile_snap > 0 snaps the whole frame anyway.
    hud_snap: int = 0
    # The same snap of the whole frame for the frame *shown* only (StepOutput.shown: the player's window,
    # the env's observation, evaluate's figures): the dream goes on from the frame as drawn, so every draw
    # is the one it would be without the snap, and the player sees bricks and pipes the game's tiles
    # where the drawing is within this many pixels of one. tile_snap > 0 already snaps what it feeds back.
    display_snap: int = 0
    # How the upsampler's full-res prior fills the strip the camera reveals: "" as the denoiser's low-res
    # prior is (the checkpoint's reveal_fill), or "edge" / "tile" (models.motion). "tile" repeats the
    # column a whole tile back, so sky stays sky and bricks stay bricks where repeating the edge column
    # would hand the upsampler streaks, which each frame then passes on as the next one's prior.
    prior_fill: str = ""
    # From the second step on, run only the denoiser UNet's top `reuse_deep` levels and reuse the deeper
    # levels' features from the first step (DeepCache, Ma et al. 2024): the coarse levels carry the
    # layout the context fixes, the top ones Mario's pixels. 0: every step runs the whole UNet.
    reuse_deep: int = 0


def edm_precond(sigma: torch.Tensor, sigma_data: float):
    """EDM's preconditioning (Karras et al. 2022, Table 1) for sigma (B,): c_in, c_skip, c_out as
    (B,1,1,1) and c_noise (B,), so that D(x; sigma) = c_skip x + c_out F(c_in x; c_noise)."""
    s = sigma.view(-1, 1, 1, 1)
    c_in = 1 / (s ** 2 + sigma_data ** 2).sqrt()
    c_skip = sigma_data ** 2 / (s ** 2 + sigma_data ** 2)
    c_out = s * sigma_data / (s ** 2 + sigma_data ** 2).sqrt()
    return c_in, c_skip, c_out, sigma.log() / 4


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) of EDM eq. 8: makes ||D - y||^2 weigh as ||F - F_target||^2, O(1) at every sigma."""
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float, device=None) -> torch.Tensor:
    """Eq. 5 of EDM: n noise levels from sigma_max down to sigma_min, then a final 0."""
    if n == 1:
        return torch.tensor([sigma_max, 0.0], device=device)
    i = torch.arange(n, device=device, dtype=torch.float64)
    s = (sigma_max ** (1 / rho) + i / (n - 1) * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, s.new_zeros(1)]).float()


# The random draws of a batch: one torch.Generator for the whole batch (its rows' noise then depends on
# the batch around them), a list of one per row (each row's noise depends only on its own: evaluation runs
# stay paired between two samplers whatever the other runs of a batch do), or None (torch's global one).
Generators = torch.Generator | list[torch.Generator] | None


def randn(shape: tuple[int, ...], device, generator: Generators = None) -> torch.Tensor:
    """Standard normal noise of `shape` (batch first) from `generator` (Generators)."""
    if isinstance(generator, (list, tuple)):
        if len(generator) != shape[0]:
            raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
        return torch.stack([torch.randn(shape[1:], device=device, generator=g) for g in generator])
    return torch.randn(shape, device=device, generator=generator)


def batch_rows(generator: Generators, idx) -> Generators:
    """The generators of the batch rows `idx` (a shared generator or None stays as it is)."""
    if isinstance(generator, (list, tuple)):
        return [generator[int(i)] for i in idx]
    return generator


@torch.no_grad()
def sample_residual(denoise, shape: tuple[int, ...], cfg: SamplerConfig, device, generator: Generators = None
                    ) -> torch.Tensor:
    """Run the sampler; `denoise(x, sigma_batch)` returns D(x; sigma). Returns the final sample."""
    sigmas = karras_sigmas(cfg.num_steps, cfg.sigma_min, cfg.sigma_max, cfg.rho, device)
    x = randn(shape, device, generator) * sigmas[0]
    b = shape[0]
    gamma_max = min(cfg.s_churn / cfg.num_steps, math.sqrt(2) - 1)
    for i in range(cfg.num_steps):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        gamma = gamma_max if cfg.s_tmin <= s_cur <= cfg.s_tmax else 0.0
        s_hat = s_cur * (1 + gamma)
        if gamma > 0:
            eps = randn(shape, device, generator) * cfg.s_noise
            x = x + (s_hat ** 2 - s_cur ** 2).sqrt() * eps
        d = (x - denoise(x, s_hat.expand(b))) / s_hat
        x_next = x + (s_next - s_hat) * d
        if cfg.order == 2 and s_next > 0:
            d2 = (x_next - denoise(x_next, s_next.expand(b))) / s_next
            x_next = x + (s_next - s_hat) * (d + d2) / 2
        x = x_next
    return x


def load_sampler(name: str = DEFAULT_SAMPLER, denoising_steps: int | None = None) -> SamplerConfig:
    """A sampler preset from config/sampler/<name>.yaml (the files the trainer's and evaluate's Hydra
    configs use); `denoising_steps` overrides its num_steps."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    f = SAMPLER_PRESETS / f"{name}.yaml"
    if not f.exists():
        known = ", ".join(sampler_presets())
        raise ValueError(f"unknown sampler preset {name!r} (known: {known})")
    cfg = instantiate(OmegaConf.load(f))
    if denoising_steps:
        cfg.num_steps = int(denoising_steps)
    return cfg
