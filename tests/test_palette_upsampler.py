"""The palette upsampler: every pixel one NES palette colour, checked on real emulator frames."""
from __future__ import annotations

import numpy as np
import torch

from smbwm.data.episode import list_episodes, read_episode
from smbwm.models.motion import area_downsample
from smbwm.models.palette import NES_PALETTE, palette_index, palette_tensor
from smbwm.models.upsampler import Upsampler, UpsamplerConfig
from smbwm.models.world_model import to_model


def _real_frames(real_episodes, n=6) -> torch.Tensor:
    frames = np.concatenate([read_episode(p).frames[::20] for p in list_episodes(real_episodes)])
    return to_model(frames[:: max(1, len(frames) // n)][:n])


def test_real_emulator_frames_are_made_of_the_palette_only(real_episodes):
    frames = np.concatenate([read_episode(p).frames for p in list_episodes(real_episodes)])
    rgb = frames.reshape(-1, 3).astype(np.uint32)
    packed = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])     # 1-D unique: a row-wise one takes minutes
    assert {(int(c >> 16), int(c >> 8 & 255), int(c & 255)) for c in packed} <= set(NES_PALETTE)
    x = to_model(frames[::15])
    assert torch.equal(palette_tensor()[palette_index(x)].movedim(-1, 1), x)   # index -> colour round trip


def test_palette_upsampler_starts_as_the_prior_and_draws_only_palette_colours(real_episodes):
    det = Upsampler(UpsamplerConfig(channels=8, blocks=1))
    up = Upsampler(UpsamplerConfig(channels=8, blocks=1, palette=True))
    up.load_state_dict(up.from_deterministic(det.state_dict()))
    x = _real_frames(real_episodes)
    assert torch.equal(up(x, area_downsample(x)), x)
    with torch.no_grad():
        up.palette_out.weight.normal_(0, 1.0)           # an untrained head: whatever it picks is a palette colour
    out = up(x, area_downsample(x))
    assert not torch.equal(out, x)
    pal = palette_tensor()
    assert torch.equal(pal[palette_index(out)].movedim(-1, 1), out)


def test_palette_upsampler_learns_the_next_frame_of_real_play(real_episodes):
    torch.manual_seed(0)
    x = _real_frames(real_episodes, 8)
    prior, target = x[:-1], x[1:]
    up = Upsampler(UpsamplerConfig(channels=16, blocks=1, palette=True, lowres_noise=0.0))
    opt = torch.optim.Adam(up.parameters(), lr=3e-3)
    first = up.loss(prior, area_downsample(target), target)[0].item()
    for _ in range(30):
        loss, _ = up.loss(prior, area_downsample(target), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.7 * first


def test_upsampler_only_training_turns_a_checkpoint_into_a_palette_one_and_leaves_the_denoiser(
        tiny_checkpoint, real_episodes, tmp_path):
    import json

    from conftest import compose
    from main import run
    from smbwm.models.world_model import WorldModel
    step = json.loads((tiny_checkpoint / "model.json").read_text())["step"]
    run(compose("trainer", ["experiment=tiny", f"data.dir={real_episodes}", "wandb.mode=disabled",
                            f"init_from={tiny_checkpoint}", "training.upsampler_only=true", f"training.steps={step + 3}",
                            f"training.checkpoint_every={step + 3}", "model.upsampler.palette=true",
                            "model.upsampler.mask_threshold=0.1"]), tmp_path)
    out = tmp_path / "checkpoints" / f"step_{step + 3:07d}"
    meta = json.loads((out / "model.json").read_text())
    assert meta["step"] == step and meta["upsampler_only_steps"] == 3        # the denoiser's steps stay its own
    before, _ = WorldModel.load(tiny_checkpoint)
    after, _ = WorldModel.load(out)
    assert after.upsampler.cfg.palette
    for (k, a), b in zip(after.denoiser.state_dict().items(), before.denoiser.state_dict().values()):
        assert torch.equal(a, b), k
