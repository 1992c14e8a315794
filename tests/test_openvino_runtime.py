"""The OpenVINO backend draws what torch draws: same networks, compiled by OpenVINO, torch the reference."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

pytest.importorskip("openvino")


def _inputs(model, batch: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    c = model.context
    obs = torch.rand(batch, c, 3, 60, 64, generator=g) * 2 - 1
    full = torch.rand(batch, 3, 240, 256, generator=g) * 2 - 1
    act = (torch.rand(batch, c, 6, generator=g) > 0.5).float()
    past = torch.randint(-2, 3, (batch, c - 1), generator=g)
    return obs, full, act, past


def _palette_model():
    from smbwm.models.denoiser import DenoiserConfig
    from smbwm.models.upsampler import UpsamplerConfig
    from smbwm.models.world_model import WorldModel
    torch.manual_seed(0)
    m = WorldModel(DenoiserConfig(channels=[16, 16, 32, 32]), UpsamplerConfig(channels=16, blocks=1, palette=True))
    with torch.no_grad():       # zero-initialised output layers would make every comparison trivially equal
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


@pytest.mark.parametrize("reuse_deep", [0, 2])
def test_openvino_step_agrees_with_torch_and_other_batches_fall_back(reuse_deep):
    from smbwm.models.openvino_runtime import _Compiled, _CompiledDenoise, use_openvino
    from smbwm.models.sampler import SamplerConfig
    ref = _palette_model()
    ov_model = use_openvino(copy.deepcopy(ref), bf16=False, threads=1, reuse_deep=reuse_deep)
    den = ov_model.denoiser.denoise
    assert isinstance(den, _CompiledDenoise) and isinstance(ov_model.upsampler._features, _Compiled)
    assert sorted(den.requests) == (["full", "keeping", "reusing"] if reuse_deep else ["full"])
    sampler = SamplerConfig(num_steps=2, sigma_min=0.4, reuse_deep=reuse_deep)
    obs, full, act, past = _inputs(ref, 1)
    a = ref.step(obs, full, act, past, sampler, generator=torch.Generator().manual_seed(1))
    torch_pass, den.fallback = den.fallback, None                  # batch 1: every denoiser call is OpenVINO's
    b = ov_model.step(obs, full, act, past, sampler, generator=torch.Generator().manual_seed(1))
    den.fallback = torch_pass
    assert torch.equal(a.scroll, b.scroll)
    assert (a.low - b.low).abs().max() < 1e-3                      # fp32 in both: float rounding only
    assert (a.full != b.full).any(1).float().mean() < 0.01         # palette argmax: a near-tie may flip
    assert (a.low - obs[:, -1]).abs().mean() > 0.01                # and the step did draw something
    # a batch of 2 is not the compiled shape: torch runs it, with the same result as the reference
    obs2, full2, act2, past2 = _inputs(ref, 2, seed=5)
    a2 = ref.step(obs2, full2, act2, past2, sampler, generator=torch.Generator().manual_seed(2))
    b2 = ov_model.step(obs2, full2, act2, past2, sampler, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(a2.low, b2.low) and torch.equal(a2.full, b2.full)


def test_dream_env_on_openvino_plays_like_torch(tiny_checkpoint, tiny_spawns):
    from smbwm.envs.world_model_env import WorldModelEnv
    frames = {}
    for backend in ("torch", "openvino"):
        env = WorldModelEnv(checkpoint=tiny_checkpoint, spawn_dir=tiny_spawns, backend=backend)
        assert env.backend == backend
        env.reset(seed=3, options={"spawn": 0})
        frames[backend] = np.stack([env.step(a)[0] for a in (0x80, 0x81, 0x80, 0x40)]).astype(int)
        env.close()
    assert frames["openvino"].shape == (4, 240, 256, 3)
    diff = np.abs(frames["openvino"] - frames["torch"])
    assert diff.mean() < 2.0 and np.percentile(diff, 99) <= 16     # bf16 inside OpenVINO on bf16 CPUs


def test_backend_choice_and_bad_flags():
    from smbwm.envs.world_model_env import resolve_backend
    from smbwm.game.config import PlayError, parse_args
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == "openvino"               # installed here (importorskip above)
    assert resolve_backend("auto", cpu, compile=True) == "torch"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", cpu)
    with pytest.raises(PlayError, match="--compile"):
        parse_args(["--backend", "openvino", "--compile"])
    assert parse_args([]).backend == "auto"
    from smbwm.game import config
    from smbwm.models import openvino_runtime
    assert config.BACKENDS == openvino_runtime.BACKENDS


def test_converted_models_are_cached_per_weights(tmp_path, monkeypatch):
    from smbwm.models.openvino_runtime import use_openvino
    from smbwm.models.sampler import SamplerConfig
    monkeypatch.setenv("SMBWM_CACHE", str(tmp_path))
    ref = _palette_model()
    use_openvino(copy.deepcopy(ref), bf16=False, threads=1)
    cached = sorted((tmp_path / "openvino").glob("*.xml"))
    assert len(cached) == 2                                        # the denoiser and the upsampler's ResNet
    again = use_openvino(copy.deepcopy(ref), bf16=False, threads=1)   # read back, not traced again
    assert sorted((tmp_path / "openvino").glob("*.xml")) == cached
    obs, full, act, past = _inputs(ref, 1)
    s = SamplerConfig(num_steps=1)
    a = ref.step(obs, full, act, past, s, generator=torch.Generator().manual_seed(1))
    b = again.step(obs, full, act, past, s, generator=torch.Generator().manual_seed(1))
    assert (a.low - b.low).abs().max() < 1e-3
    other = copy.deepcopy(ref)                                     # other weights: converted anew
    with torch.no_grad():
        next(other.denoiser.parameters()).add_(1.0)
    use_openvino(other, bf16=False, threads=1)
    assert len(list((tmp_path / "openvino").glob("*.xml"))) == 3
    (tmp_path / "openvino" / cached[0].name).write_text("garbage")  # a broken cache file is converted over
    use_openvino(copy.deepcopy(ref), bf16=False, threads=1)


def test_without_openvino_auto_falls_back_to_torch_and_openvino_is_one_line(tiny_checkpoint, tiny_spawns, monkeypatch):
    from smbwm.game.config import PlayError, parse_args
    from smbwm.game.factory import make_dream
    from smbwm.models import openvino_runtime
    monkeypatch.setattr(openvino_runtime, "openvino_available", lambda: False)
    env = make_dream(parse_args(["--checkpoint", str(tiny_checkpoint), "--spawn", str(tiny_spawns)]))
    assert env.backend == "torch"                                   # auto: torch when OpenVINO is missing
    env.close()
    with pytest.raises(PlayError, match=r"^--backend openvino: OpenVINO is not installed .*--backend torch$"):
        make_dream(parse_args(["--checkpoint", str(tiny_checkpoint), "--backend", "openvino"]))
