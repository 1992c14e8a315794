"""The diffusion upsampler: warm start from a deterministic one, sampling, and why it exists (it
draws one of two sprites that share a low-res blob, where the deterministic one draws their average)."""
from __future__ import annotations

import pytest
import torch

from smbwm.models.motion import area_downsample
from smbwm.models.upsampler import Upsampler, UpsamplerConfig


def _perturbed(up: Upsampler, seed: int = 0) -> Upsampler:
    g = torch.Generator().manual_seed(seed)
    for p in up.parameters():                     # zero-init layers would hide every input: perturb
        p.data += 0.05 * torch.randn(p.shape, generator=g)
    return up


def test_diffusion_upsampler_starts_as_the_deterministic_one_it_was_made_from():
    det = _perturbed(Upsampler(UpsamplerConfig(channels=8, blocks=2)))
    dif = Upsampler(UpsamplerConfig(channels=8, blocks=2, diffusion=True))
    dif.load_state_dict(dif.from_deterministic(det.state_dict()))
    prior = torch.rand(2, 3, 240, 256) * 2 - 1
    low = area_downsample(prior) + 0.1
    noisy, c_noise = torch.randn(2, 3, 240, 256), torch.tensor([-1.0, 0.5])
    assert torch.allclose(dif._net(prior, low, noisy, c_noise), det._net(prior, low), atol=1e-5)
    # weights of another size are passed through untouched, for load_state_dict to refuse
    other = Upsampler(UpsamplerConfig(channels=4, blocks=2)).state_dict()
    with pytest.raises(RuntimeError):
        dif.load_state_dict(dif.from_deterministic(other))


def test_sampling_is_reproducible_per_generator_and_stays_in_range():
    up = _perturbed(Upsampler(UpsamplerConfig(channels=8, blocks=1, diffusion=True, sample_steps=2)))
    prior = torch.rand(1, 3, 240, 256) * 2 - 1
    low = area_downsample(prior)
    a = up(prior, low, generator=torch.Generator().manual_seed(1))
    b = up(prior, low, generator=torch.Generator().manual_seed(1))
    c = up(prior, low, generator=torch.Generator().manual_seed(2))
    assert a.shape == (1, 3, 240, 256) and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1


def _two_sprites(b: int, g: torch.Generator):
    """A 16x16 checkerboard or its inverse on a flat 32x32 frame (the upsampler is convolutional):
    both have the same 4x4 area average, so the low-res frame cannot say which one the full frame shows."""
    prior = torch.zeros(b, 3, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
    board = ((yy + xx) % 2 * 2 - 1).float() * 0.8                                  # (16,16) +-0.8
    sign = torch.randint(0, 2, (b,), generator=g).float() * 2 - 1
    target = prior.clone()
    target[:, :, 8:24, 8:24] = sign.view(b, 1, 1, 1) * board
    return prior, area_downsample(target), target, board


STEPS = 3000


@pytest.mark.slow
def test_diffusion_draws_one_sprite_where_the_deterministic_upsampler_draws_their_average():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    # the sprite is a small part of the frame, as Mario is: weigh the pixels the prior gets wrong
    cfg = dict(channels=32, blocks=2, lowres_noise=0.0, motion_weight=8.0)
    det = Upsampler(UpsamplerConfig(**cfg))
    dif = Upsampler(UpsamplerConfig(**cfg, diffusion=True, sample_steps=3, sigma_min=0.4))
    for up in (det, dif):
        opt = torch.optim.Adam(up.parameters(), lr=1e-3)
        for _ in range(STEPS):
            prior, low, target, _ = _two_sprites(8, g)
            loss, _ = up.loss(prior, low, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    prior, low, _, board = _two_sprites(32, g)
    with torch.no_grad():
        mean = det(prior, low)[:, :, 8:24, 8:24]
        drawn = dif(prior, low, generator=torch.Generator().manual_seed(3))[:, :, 8:24, 8:24]
    assert mean.abs().mean() < 0.2                                  # the average of the two: flat grey
    agreement = (drawn * board).mean((1, 2, 3)) / (board * board).mean()   # +1: the board, -1: its inverse
    # most samples are one whole sprite (a few stay undecided at this training length)
    assert agreement.abs().median() > 0.6 and (agreement.abs() > 0.5).float().mean() > 0.6, agreement
    assert (agreement > 0.5).any() and (agreement < -0.5).any()     # and both sprites get drawn


def test_a_masked_diffusion_upsampler_keeps_the_prior_where_the_low_res_frame_agrees():
    up = _perturbed(Upsampler(UpsamplerConfig(channels=8, blocks=1, diffusion=True, mask_threshold=0.1)))
    prior = torch.rand(2, 3, 240, 256) * 2 - 1
    low = area_downsample(prior)
    low[:, :, 20:22, 30:32] += 0.5                                 # Mario moved into these low-res cells
    m = up.change_mask(prior, low)
    assert m.shape == (2, 1, 240, 256) and m.sum() == 2 * (4 * 4) ** 2      # 2x2 cells and a cell around: 4x4 cells
    out = up(prior, low, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :, :76], prior.clamp(-1, 1)[:, :, :76])        # far from the change: the prior
    assert not torch.equal(out[:, :, 76:92, 116:132], prior[:, :, 76:92, 116:132])
    loss, _ = up.loss(prior, low, prior)
    assert torch.isfinite(loss)
