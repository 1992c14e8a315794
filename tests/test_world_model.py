"""World model: preconditioning, conditioning, learning, checkpoints, sampler, dream env."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from smbwm.models.denoiser import Denoiser, DenoiserConfig
from smbwm.models.motion import apply_scroll, area_downsample, shift_lowres
from smbwm.models.sampler import SamplerConfig, karras_sigmas, sample_residual
from smbwm.models.upsampler import Upsampler, UpsamplerConfig
from smbwm.models.world_model import WorldModel, to_model, to_uint8

TINY = DenoiserConfig(channels=[8, 8, 16, 16], cond_dim=32, scroll_channels=8)


def _batch(b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.rand(b, 4, 3, 60, 64, generator=g) * 2 - 1
    act = torch.randint(0, 2, (b, 4, 6), generator=g).float()
    scroll = torch.randint(-4, 8, (b,), generator=g)
    past = torch.randint(-4, 8, (b, 3), generator=g)
    return obs, act, scroll, past


def test_preconditioning_identities():
    d = Denoiser(TINY)
    sigma = torch.tensor([1e-4, 0.5, 10.0])
    c_in, c_skip, c_out, _ = d.precond(sigma)
    sd = TINY.sigma_data
    # c_skip -> 1 and c_out -> 0 as sigma -> 0: D(x; 0) = x
    assert c_skip[0].item() == pytest.approx(1.0, abs=1e-6) and c_out[0].item() == pytest.approx(0.0, abs=1e-3)
    # unit variance of the network's input and target (EDM Table 1)
    assert torch.allclose(c_in.flatten() ** 2 * (sigma ** 2 + sd ** 2), torch.ones(3))
    # and of its training target (y - c_skip (y + n)) / c_out, y ~ sigma_data, n ~ sigma
    cs, co = c_skip.flatten(), c_out.flatten()
    assert torch.allclose(((1 - cs) ** 2 * sd ** 2 + cs ** 2 * sigma ** 2) / co ** 2, torch.ones(3), atol=1e-4)
    obs, act, scroll, _ = _batch(3)
    x = torch.randn(3, 3, 60, 64)
    out = d(x, sigma, obs, d.prior(obs, scroll), act, scroll)
    assert out.shape == x.shape
    assert torch.allclose(out[0], x[0], atol=1e-3)  # tiny sigma reproduces its input


def test_actions_change_the_output():
    torch.manual_seed(0)
    d = Denoiser(TINY)
    for p in d.parameters():                          # zero-init output layers hide conditioning: perturb
        p.data += 0.05 * torch.randn_like(p)
    obs, act, scroll, past = _batch(2)
    x, sigma = torch.randn(2, 3, 60, 64), torch.full((2,), 1.0)
    prior = d.prior(obs, scroll)
    a1 = torch.zeros_like(act)
    a2 = a1.clone()
    a2[:, -1, 0] = 1                                  # press right now
    o1, o2 = d(x, sigma, obs, prior, a1, scroll), d(x, sigma, obs, prior, a2, scroll)
    assert (o1 - o2).abs().mean() > 1e-4
    assert not torch.equal(d.scroll_head(obs, a1, past), d.scroll_head(obs, a2, past))


def test_scroll_head_reads_past_scrolls_unless_they_are_hidden():
    torch.manual_seed(0)
    head = Denoiser(TINY).scroll_head
    obs, act, _, past = _batch(2)
    other = (past + 5).clamp(-16, 16)
    seen = torch.ones(2, dtype=torch.bool)
    assert not torch.allclose(head(obs, act, past, seen), head(obs, act, other, seen))
    hidden = torch.zeros(2, dtype=torch.bool)          # what past_scroll_dropout trains on
    assert torch.equal(head(obs, act, past, hidden), head(obs, act, other, hidden))
    # where Mario is matters: the same frames moved sideways give other logits
    assert not torch.allclose(head(obs, act, past, seen), head(obs.roll(8, -1), act, past, seen))


def test_loss_goes_down_on_a_fixed_batch():
    torch.manual_seed(0)
    d = Denoiser(TINY)
    obs, act, scroll, past = _batch(4)
    target = shift_lowres(obs[:, -1], scroll)
    target[:, :, 30:40, 20:30] = 0.7                  # something the shift does not explain
    opt = torch.optim.AdamW(d.parameters(), lr=3e-3)
    losses = []
    for i in range(40):
        torch.manual_seed(i % 4)                      # the same 4 noise draws over and over
        loss, stats = d.loss(obs, act, scroll, past, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(stats["loss_denoise"] + stats["loss_scroll"])
    assert np.mean(losses[-8:]) < 0.6 * np.mean(losses[:8])


def test_scroll_shift_and_lowres_prior_agree_on_real_frames(real_episodes):
    from smbwm.data.episode import list_episodes, read_episode
    from smbwm.models.motion import estimate_scrolls
    ep = read_episode(list_episodes(real_episodes)[0])
    f = ep.frames[:40]
    k = torch.as_tensor(estimate_scrolls(f)).long()
    prev, nxt = to_model(f[:-1]), to_model(f[1:])
    shifted = apply_scroll(prev, k)
    # the shifted previous frame explains the next frame far better than the previous frame itself
    assert (shifted - nxt).abs().mean() < 0.5 * (prev - nxt).abs().mean() or k.abs().sum() == 0
    low_exact = area_downsample(shifted)
    low_approx = shift_lowres(area_downsample(prev), k)
    assert (low_exact - low_approx).abs().mean() < 0.05


def test_upsampler_starts_as_the_prior_and_keeps_shape():
    up = Upsampler(UpsamplerConfig(channels=8, blocks=1))
    prior = torch.rand(2, 3, 240, 256) * 2 - 1
    out = up(prior, area_downsample(prior))
    assert out.shape == (2, 3, 240, 256) and torch.allclose(out, prior.clamp(-1, 1))


def test_karras_schedule_and_sampler_converge_to_a_known_point():
    s = karras_sigmas(5, 0.002, 5.0, 7.0)
    assert s[0] == pytest.approx(5.0) and s[-2] == pytest.approx(0.002, rel=1e-4) and s[-1] == 0
    assert torch.all(s[:-1] > s[1:])
    target = torch.full((1, 3, 4, 4), 0.3)
    for order in (1, 2):
        cfg = SamplerConfig(num_steps=6, order=order, s_churn=0.5 if order == 2 else 0.0)
        x = sample_residual(lambda x, sig: target.expand_as(x), (1, 3, 4, 4), cfg, "cpu",
                            torch.Generator().manual_seed(0))
        assert torch.allclose(x, target, atol=1e-3)   # a perfect denoiser lands on its data point


def test_checkpoint_round_trip_and_fp16_export(tmp_path):
    torch.manual_seed(0)
    wm = WorldModel(TINY, UpsamplerConfig(channels=8, blocks=1))
    wm.save(tmp_path / "a", {"step": 7})
    wm2, meta = WorldModel.load(tmp_path / "a")
    assert meta["step"] == 7
    for (k, v), (k2, v2) in zip(wm.state_dict().items(), wm2.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    wm.save(tmp_path / "h", dtype=torch.float16)
    assert (tmp_path / "h" / "denoiser.safetensors").stat().st_size < 0.6 * (tmp_path / "a" / "denoiser.safetensors").stat().st_size
    obs, act, scroll, past = _batch(1)
    full = torch.rand(1, 3, 240, 256) * 2 - 1
    cfg = SamplerConfig(num_steps=2)
    o = wm2.step(obs, full, act, past, cfg, generator=torch.Generator().manual_seed(0))
    assert o.full.shape == (1, 3, 240, 256) and o.low.shape == (1, 3, 60, 64) and o.scroll.shape == (1,)
    assert to_uint8(o.full).shape == (1, 240, 256, 3)


def test_broken_checkpoints_give_one_line(tmp_path):
    from smbwm.utils.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match="no world-model checkpoint"):
        WorldModel.load(tmp_path)
    wm = WorldModel(TINY, UpsamplerConfig(channels=8, blocks=1))
    wm.save(tmp_path / "c")
    (tmp_path / "c" / "denoiser.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a valid safetensors") as e:
        WorldModel.load(tmp_path / "c")
    assert "\n" not in str(e.value)


def test_motion_weight_emphasises_only_the_pixels_the_step_changes():
    from dataclasses import replace
    obs, act, scroll, past = _batch(2)
    target = shift_lowres(obs[:, -1], scroll)
    plain, weighted = Denoiser(TINY), Denoiser(replace(TINY, motion_weight=9.0))
    weighted.load_state_dict(plain.state_dict())

    def loss(d, tgt):
        torch.manual_seed(0)
        return d.loss(obs, act, scroll, past, tgt)[1]["loss_denoise"]
    # a target the shifted last frame explains exactly: no pixel changes, the weighting does nothing
    assert loss(plain, target) == pytest.approx(loss(weighted, target), rel=1e-5)
    w = weighted.motion_pixels(obs, scroll, target)
    assert torch.all(w == 1)
    moved = target.clone()
    moved[:, :, 30:34, 20:24] = 0.9                                  # a 4x4 sprite appears
    w = weighted.motion_pixels(obs, scroll, moved)
    assert torch.all(w[:, :, 31:33, 21:23] == 10) and torch.all(w[:, :, :20] == 1)
    assert loss(plain, moved) != pytest.approx(loss(weighted, moved), rel=1e-3)


def test_mario_weight_emphasises_the_box_around_the_games_mario():
    from dataclasses import replace
    from smbwm.models.denoiser import mario_box
    obs, act, scroll, past = _batch(2)
    target = obs[:, -1].clone()
    mario = torch.tensor([[[30.0, 20.0], [28.0, 21.0]], [[float("nan")] * 2] * 2])
    box = mario_box(mario, (60, 64))
    assert box[0, 0, 26:33, 18:23].all() and box[0, 0, 24:31, 19:24].all()   # 7 rows x 5 columns each
    assert box[0].sum() == 35 + 35 - 5 * 4                    # their union
    assert box[1].sum() == 0                                   # positions unknown: no box
    plain, weighted = Denoiser(TINY), Denoiser(replace(TINY, mario_weight=9.0))
    weighted.load_state_dict(plain.state_dict())

    def loss(d, m):
        torch.manual_seed(0)
        return d.loss(obs, act, scroll, past, target, m)[1]["loss_denoise"]
    assert loss(plain, mario) == pytest.approx(loss(plain, None), rel=1e-6)    # mario_weight 0: positions unused
    assert loss(weighted, None) == pytest.approx(loss(plain, None), rel=1e-6)
    assert loss(weighted, mario) != pytest.approx(loss(plain, mario), rel=1e-3)


def test_the_games_mario_positions_fall_on_his_sprite_in_real_frames(real_episodes):
    from smbwm.data.episode import list_episodes, read_episode
    from smbwm.data.segments import SegmentSampler, load_lowres_episodes, mario_lowres_position
    from smbwm.models.denoiser import mario_box
    inside = total = 0
    for path in list_episodes(real_episodes):
        ep = read_episode(path)
        pos = mario_lowres_position(ep.info, len(ep.frames))
        assert pos.shape == (len(ep.frames), 2) and np.isfinite(pos).mean() > 0.9
        for t in range(0, len(ep.frames), 5):
            box = mario_box(torch.from_numpy(pos[None, t:t + 1]), (60, 64))[0, 0].numpy()
            red = (np.abs(ep.frames[t].astype(int) - [248, 56, 0]).max(-1) < 30)   # Mario's red
            red[:32] = False                                                         # the HUD
            ys, xs = np.nonzero(red)
            inside, total = inside + box[ys // 4, xs // 4].sum(), total + len(ys)
    assert total > 1000 and inside / total > 0.85
    eps = load_lowres_episodes(list_episodes(real_episodes), real_episodes)
    batch = SegmentSampler(eps, 4, seed=0).sample(16)
    assert batch["mario"].shape == (16, 2, 2) and torch.isfinite(batch["mario"]).float().mean() > 0.9


def test_tile_fill_of_the_revealed_strip_beats_repeating_the_edge_on_real_frames(real_episodes):
    from smbwm.data.episode import list_episodes, read_episode
    from smbwm.models.motion import estimate_scrolls
    errs = {"edge": [], "tile": []}
    for p in list_episodes(real_episodes):
        f = read_episode(p).frames
        k = torch.as_tensor(estimate_scrolls(f)).long()
        keep = k > 0                                                   # steps where the camera moves right
        if not keep.any():
            continue
        prev, nxt, k = to_model(f[:-1][keep.numpy()]), to_model(f[1:][keep.numpy()]), k[keep]
        shifted = {fill: apply_scroll(prev, k, fill=fill) for fill in errs}
        inside = torch.arange(256) < 256 - 16                            # never in a revealed strip (k <= 16)
        assert torch.equal(shifted["edge"][..., inside], shifted["tile"][..., inside])
        revealed = (torch.arange(256).view(1, 1, 1, -1) >= 256 - k.view(-1, 1, 1, 1)).expand(-1, 3, 208, -1)
        for fill, s in shifted.items():
            errs[fill].append((s - nxt)[:, :, 32:][revealed].abs().mean().item())
            low_exact = area_downsample(s)
            assert (low_exact - shift_lowres(area_downsample(prev), k, fill=fill)).abs().mean() < 0.05
    assert errs["tile"] and np.mean(errs["tile"]) < 0.9 * np.mean(errs["edge"])
    with pytest.raises(ValueError, match="reveal fill"):
        apply_scroll(prev, k, fill="mirror")


def test_the_sampler_chooses_how_the_upsampler_prior_fills_the_revealed_strip(real_episodes):
    from smbwm.data.episode import list_episodes, read_episode
    f = read_episode(list_episodes(real_episodes)[0]).frames[10:12]
    torch.manual_seed(0)
    model = WorldModel(TINY, UpsamplerConfig(channels=8, blocks=1)).eval()   # untrained: returns its prior
    last = to_model(f)
    obs = area_downsample(last)[:, None].expand(2, 4, 3, 60, 64).contiguous()
    k = torch.tensor([12, 5])
    drawn = {}
    for fill in ("", "edge", "tile"):
        out = model.step(obs, last, torch.zeros(2, 4, 6), torch.zeros(2, 3, dtype=torch.long),
                         SamplerConfig(num_steps=1, sigma_max=5.0, prior_fill=fill), scroll=k)
        drawn[fill] = out.full
        assert torch.allclose(out.full, apply_scroll(last, k, fill=fill or TINY.reveal_fill), atol=1e-5)
    assert torch.equal(drawn[""], drawn["edge"]) and not torch.equal(drawn["edge"], drawn["tile"])


def test_upsampler_motion_weight_counts_only_the_pixels_the_prior_gets_wrong():
    torch.manual_seed(0)
    prior = torch.rand(2, 3, 240, 256) * 2 - 1
    low = area_downsample(prior)
    target = prior.clone()
    target[:, :, 100:116, 120:136] = 1.0                        # a sprite the prior does not show
    plain, weighted = Upsampler(UpsamplerConfig(lowres_noise=0)), Upsampler(UpsamplerConfig(lowres_noise=0, motion_weight=8))
    weighted.load_state_dict(plain.state_dict())                 # both start as "the prior"
    assert weighted.loss(prior, low, target)[0] > 5 * plain.loss(prior, low, target)[0]
    assert weighted.loss(prior, low, prior)[0] == plain.loss(prior, low, prior)[0] == 0


def test_reused_deep_features_run_only_the_top_levels_and_match_where_nothing_changed():
    torch.manual_seed(0)
    d = Denoiser(TINY).eval()
    for p in d.parameters():                          # zero-init output layers would make every output equal
        p.data += 0.05 * torch.randn_like(p)
    obs, act, scroll, _ = _batch(2)
    prior, x, sigma = d.prior(obs, scroll), torch.randn(2, 3, 60, 64), torch.full((2,), 2.0)
    with torch.no_grad():
        full = d(x, sigma, obs, prior, act, scroll)
        for keep in (1, 2, 3):
            out, deep = d.denoise(x, sigma, obs, prior, act, scroll, keep=keep)
            assert torch.equal(out, full) and deep.shape == (2, TINY.channels[keep], 64 >> keep, 64 >> keep)
            again, none = d.denoise(x, sigma, obs, prior, act, scroll, keep=keep, deep=deep)
            assert none is None and torch.allclose(again, full, atol=1e-5)    # the same input: the same output
        # a later sampler step (another sigma) on the first step's deep features is not the full pass
        deep = d.denoise(x, sigma, obs, prior, act, scroll, keep=2)[1]
        later, _ = d.denoise(x, sigma / 4, obs, prior, act, scroll, keep=2, deep=deep)
        assert (later - d(x, sigma / 4, obs, prior, act, scroll)).abs().mean() > 1e-5
    # the sampler runs the coarse levels once per frame, the top levels at every step
    calls = {"mid": 0, "top": 0}
    d.unet.mid[0].register_forward_hook(lambda *_: calls.__setitem__("mid", calls["mid"] + 1))
    d.unet.down[0][0].register_forward_hook(lambda *_: calls.__setitem__("top", calls["top"] + 1))
    d.sample_next(obs, act, scroll, SamplerConfig(num_steps=4, sigma_min=0.4, reuse_deep=2))
    assert calls == {"mid": 1, "top": 4}
    with pytest.raises(ValueError, match=r"reuse_deep must be 0\.\.4"):
        d.sample_next(obs, act, scroll, SamplerConfig(num_steps=2, reuse_deep=5))


def test_per_row_generators_give_each_row_its_own_noise_whatever_the_batch():
    from smbwm.models.sampler import batch_rows, randn
    gens = lambda *seeds: [torch.Generator().manual_seed(s) for s in seeds]   # noqa: E731
    both = randn((2, 3, 4), "cpu", gens(7, 8))
    assert torch.equal(both[0], randn((1, 3, 4), "cpu", gens(7))[0])
    assert torch.equal(both[1], randn((1, 3, 4), "cpu", gens(8))[0])
    g = gens(1, 2, 3)
    assert batch_rows(g, np.array([2, 0])) == [g[2], g[0]]
    shared = torch.Generator().manual_seed(0)
    assert batch_rows(shared, [1]) is shared
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        randn((3, 2), "cpu", gens(1, 2))


def test_an_evaluation_run_draws_the_same_dream_whatever_shares_its_batch(tiny_checkpoint, real_episodes):
    """Rollout seeds each run by its key, so two samplers compared on the same runs stay paired: a run's
    frames do not depend on the runs beside it (their redraws once took noise from a shared generator)."""
    from smbwm.data.episode import list_episodes
    from smbwm.evaluation.fidelity import Rollout, pick_segments
    model, _ = WorldModel.load(tiny_checkpoint)
    segs = pick_segments(list_episodes(real_episodes), model.context + 4, 3, np.random.default_rng(0), "test")
    sampler = SamplerConfig(num_steps=2, s_churn=1.0, mario_retries=2, mario_rescue=2)
    roll = Rollout(model, sampler, "cpu", None, seed=5)
    alone = roll.run(segs[1:2], 4)[1]                       # the low-res frames: the sampler's own draws
    batched = roll.run(segs, 4)[1]
    assert [s.key for s in segs] == [0, 1, 2]
    assert np.abs(batched[1].astype(int) - alone[0].astype(int)).max() <= 1     # the same draws, up to rounding
    assert np.abs(batched[1].astype(int) - batched[0].astype(int)).max() > 1
