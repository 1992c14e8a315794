"""The sampler's Mario check (SamplerConfig.mario_retries): a frame that loses or doubles the Mario its
last frame showed is drawn again, the draw closest to one Mario is kept, per frame of a batch. And the
camera that follows Mario (SamplerConfig.camera_follow): a frame whose Mario the camera pushed back is
drawn again with the camera moved by only as much as he moved."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from smbwm.data.episode import list_episodes, read_episode
from smbwm.models.mario_sprite import game_mario_position
from smbwm.models import world_model as wm
from smbwm.models.denoiser import DenoiserConfig
from smbwm.models.mario_sprite import count_marios, find_mario, mario_centres
from smbwm.models.motion import area_downsample
from smbwm.models.sampler import SamplerConfig
from smbwm.models.upsampler import UpsamplerConfig

TINY = DenoiserConfig(channels=[8, 8, 16, 16], cond_dim=32, scroll_channels=8)


def _model() -> wm.WorldModel:
    torch.manual_seed(0)
    # an untrained upsampler returns its prior, the last frame: what it shows is what the check sees
    return wm.WorldModel(TINY, UpsamplerConfig(channels=8, blocks=1)).eval()


def _inputs(frames: np.ndarray):
    """Context from real frames (B, 240, 256, 3): the last full frame, its low-res copies, no motion."""
    full = wm.to_model(frames)                                                  # (B, 3, 240, 256)
    b = len(frames)
    obs = area_downsample(full)[:, None].expand(b, 4, 3, 60, 64).contiguous()
    return obs, full, torch.zeros(b, 4, 6), torch.zeros(b, 3, dtype=torch.long), torch.zeros(b, dtype=torch.long)


def _mario_and_sky(real_episodes) -> np.ndarray:
    """A real emulator frame with Mario, and the same frame with the sky painted over him."""
    ep = read_episode(list_episodes(real_episodes)[0])
    f = ep.frames[10].copy()
    gx, gy = game_mario_position(ep.info["x_pos"][10:11], ep.info["camera_x"][10:11], ep.info["y_pos"][10:11])
    x, y = int(gx[0]), int(gy[0])
    empty = f.copy()
    empty[y - 24:y + 24, max(x - 24, 0):x + 24] = f[40, 0]
    return np.stack([f, empty])


def test_a_frame_whose_last_frame_shows_no_mario_is_not_redrawn(real_episodes):
    frames = _mario_and_sky(real_episodes)
    assert list(count_marios(frames)) == [1, 0]
    model = _model()
    obs, full, act, past, scroll = _inputs(frames)
    outs = {}
    for retries in (0, 2):
        g = torch.Generator().manual_seed(7)
        outs[retries] = model.step(obs, full, act, past, SamplerConfig(num_steps=2, mario_retries=retries),
                                   generator=g, scroll=scroll)
    # the untrained model draws its last frame: Mario kept in the first, nobody to keep in the second
    assert list(count_marios(wm.to_uint8(outs[2].full))) == [1, 0]
    assert outs[0].redraws == outs[2].redraws == 0 and "mario_check" in outs[2].timings_ms
    assert torch.equal(outs[0].full, outs[2].full) and torch.equal(outs[0].low, outs[2].low)


def _centres(counts: list[int]) -> list[list[tuple[float, float]]]:
    """What mario_centres returns for frames showing these many Marios (positions do not matter here)."""
    return [[(128.0, 120.0)] * n for n in counts]


def test_redraws_that_never_find_one_mario_keep_the_first_draw(real_episodes, monkeypatch):
    frames = _mario_and_sky(real_episodes)[:1]
    model = _model()
    obs, full, act, past, scroll = _inputs(frames)
    # the last frame (counted for real) has Mario; every draw of the next frame is counted as none
    monkeypatch.setattr(wm, "mario_centres", lambda f: _centres([0] * len(f)))
    outs = {}
    for retries in (0, 2):
        g = torch.Generator().manual_seed(7)
        outs[retries] = model.step(obs, full, act, past, SamplerConfig(num_steps=2, mario_retries=retries),
                                   generator=g, scroll=scroll)
    assert outs[2].redraws == 2
    assert torch.equal(outs[0].full, outs[2].full) and torch.equal(outs[0].low, outs[2].low)


def test_each_frame_keeps_its_draw_closest_to_one_mario(real_episodes, monkeypatch):
    frames = np.concatenate([_mario_and_sky(real_episodes), _mario_and_sky(real_episodes)[:1]])
    model = _model()
    for q in model.upsampler.parameters():          # let the picture depend on the denoiser's draw
        q.data += 0.05 * torch.randn_like(q)
    obs, full, act, past, scroll = _inputs(frames)
    # counts the check "sees" on each call: the batch's draws, then the frames it redraws; the last frames: 1 each
    script = iter([[1, 0, 2], [1, 3], [1]])
    monkeypatch.setattr(wm, "mario_centres", lambda f: _centres(next(script)))
    monkeypatch.setattr(wm, "count_marios", lambda f: np.ones(len(f), int))
    drawn = []
    forward = model.upsampler.forward
    model.upsampler.forward = lambda *a, **k: drawn.append(forward(*a, **k)) or drawn[-1]
    out = model.step(obs, full, act, past, SamplerConfig(num_steps=2, mario_retries=3),
                     generator=torch.Generator().manual_seed(1), scroll=scroll)
    assert [len(d) for d in drawn] == [3, 2, 1]     # frames 1 and 2 redrawn, then frame 2 alone
    assert out.redraws == 3
    assert not torch.equal(drawn[0][1], drawn[1][0]) and not torch.equal(drawn[1][1], drawn[2][0])
    assert torch.equal(out.full[0], drawn[0][0])    # one Mario at once: kept
    assert torch.equal(out.full[1], drawn[1][0])    # 0 -> 1 Mario: the second draw
    assert torch.equal(out.full[2], drawn[2][0])    # 2 -> 3 (worse, not taken) -> 1: the third draw


def test_a_lost_mario_gets_only_the_rescue_budget_of_redraws(real_episodes, monkeypatch):
    frames = _mario_and_sky(real_episodes)                     # last frames: Mario, and the sky without him
    model = _model()
    obs, full, act, past, scroll = _inputs(frames)
    # every draw is counted as showing no Mario; the last frames are counted for real
    monkeypatch.setattr(wm, "mario_centres", lambda f: _centres([0] * len(f)))
    drawn = []
    forward = model.upsampler.forward
    model.upsampler.forward = lambda *a, **k: drawn.append(forward(*a, **k)) or drawn[-1]
    out = model.step(obs, full, act, past, SamplerConfig(num_steps=2, mario_retries=3, mario_rescue=1),
                     generator=torch.Generator().manual_seed(1), scroll=scroll)
    # both frames are redrawn once; then only the one whose last frame showed Mario, to 3 retries
    assert [len(d) for d in drawn] == [2, 2, 1, 1]
    assert out.redraws == 4


def test_the_rescue_stops_once_mario_has_been_gone_longer_than_its_bound(real_episodes, monkeypatch):
    frames = _mario_and_sky(real_episodes)[1:].repeat(2, 0)    # two items whose last frame shows no Mario
    model = _model()
    obs, full, act, past, scroll = _inputs(frames)
    monkeypatch.setattr(wm, "mario_centres", lambda f: _centres([0] * len(f)))      # every draw loses him
    monkeypatch.setattr(wm, "count_marios", lambda f: np.zeros(len(f), int))
    drawn = []
    forward = model.upsampler.forward
    model.upsampler.forward = lambda *a, **k: drawn.append(forward(*a, **k)) or drawn[-1]
    sampler = SamplerConfig(num_steps=2, mario_retries=3, mario_rescue=2, mario_rescue_steps=5)
    out = model.step(obs, full, act, past, sampler, generator=torch.Generator().manual_seed(1), scroll=scroll,
                     lost_steps=np.array([5, 6]))
    # gone for 5 frames: still rescued (twice); for 6: past the bound, drawn once
    assert [len(d) for d in drawn] == [2, 1, 1] and out.redraws == 2
    assert list(out.marios) == [0, 0]
    drawn.clear()
    model.step(obs, full, act, past, sampler, generator=torch.Generator().manual_seed(1), scroll=scroll)
    assert [len(d) for d in drawn] == [2, 2, 2]                # no count from the caller: no bound


def test_lost_steps_count_the_frames_in_a_row_without_mario():
    lost = np.array([0, 3, 7])
    assert list(wm.count_lost_steps(lost, np.array([1, 0, 2]))) == [0, 4, 0]
    assert wm.count_lost_steps(lost, None) is lost              # the sampler did not count: nothing known


def test_the_game_camera_never_pushes_mario_back_further_than_camera_follow_allows(real_episodes):
    """camera_follow's premise, seen by the detector the sampler uses, on real emulator episodes: wherever
    the camera scrolls right, the one Mario stands no more than 4 px (the documented setting,
    `--camera-follow 4`) left of where he stood the step before."""
    limit, pushes = 4, []
    for path in list_episodes(real_episodes):
        ep = read_episode(path)
        shown, xs, _ = find_mario(ep.frames)
        scroll = np.diff(ep.info["camera_x"].astype(int))
        steps = np.flatnonzero((scroll > 0) & (scroll < 64) & shown[:-1] & shown[1:])
        pushes += list(xs[steps] - xs[steps + 1])
    assert len(pushes) > 50                             # the scripted runner scrolls the screen often
    assert max(pushes) <= limit


def _follow_setup(real_episodes, monkeypatch, head_scroll: int):
    """The untrained model (it draws the scroll-shifted last frame) on a real frame with Mario, its
    scroll head made to say `head_scroll`: the camera moves the whole picture, Mario with it."""
    frames = _mario_and_sky(real_episodes)[:1]
    model = _model()
    obs, full, act, past, _ = _inputs(frames)
    monkeypatch.setattr(model.denoiser, "predict_scroll", lambda *a: torch.full((1,), head_scroll, dtype=torch.long))
    return model, obs, full, act, past, mario_centres(frames)[0][0]


def test_a_frame_whose_mario_the_camera_pushed_back_is_drawn_with_the_camera_following_him(real_episodes, monkeypatch):
    model, obs, full, act, past, (x, y) = _follow_setup(real_episodes, monkeypatch, 8)
    outs = {follow: model.step(obs, full, act, past, SamplerConfig(num_steps=2, camera_follow=follow),
                               generator=torch.Generator().manual_seed(3)) for follow in (0, 4)}
    assert int(outs[0].scroll[0]) == 8 and outs[0].redraws == 0 and "camera_follow" not in outs[0].timings_ms
    assert mario_centres(wm.to_uint8(outs[0].full))[0][0][0] == x - 8          # pushed back with the picture
    # the camera moved 8 px, Mario 8 px less: drawn again with the camera moved by Mario's 0
    assert int(outs[4].scroll[0]) == 0 and outs[4].redraws == 1 and "camera_follow" in outs[4].timings_ms
    assert mario_centres(wm.to_uint8(outs[4].full))[0] == [(x, y)]


def test_a_push_within_the_bound_a_forced_camera_and_a_frame_without_mario_stay_as_drawn(real_episodes, monkeypatch):
    sampler = SamplerConfig(num_steps=2, camera_follow=4)
    model, obs, full, act, past, (x, _) = _follow_setup(real_episodes, monkeypatch, 4)
    out = model.step(obs, full, act, past, sampler, generator=torch.Generator().manual_seed(3))
    assert int(out.scroll[0]) == 4 and out.redraws == 0                           # 4 px: the game does that
    forced = model.step(obs, full, act, past, sampler, generator=torch.Generator().manual_seed(3),
                        scroll=torch.tensor([8]))
    assert int(forced.scroll[0]) == 8 and forced.redraws == 0                      # evaluation's real scrolls
    sky = _mario_and_sky(real_episodes)[1:]
    obs, full, act, past, _ = _inputs(sky)
    monkeypatch.setattr(model.denoiser, "predict_scroll", lambda *a: torch.full((1,), 8, dtype=torch.long))
    out = model.step(obs, full, act, past, sampler, generator=torch.Generator().manual_seed(3))
    assert int(out.scroll[0]) == 8 and out.redraws == 0                            # nobody to follow


def test_the_pushback_script_tables_the_game_and_the_detector(real_episodes, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "camera_pushback.py"
    done = subprocess.run([sys.executable, str(script), "--data", str(real_episodes)], capture_output=True, text=True,
                          timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in done.stdout.splitlines() if line.startswith("| the ")}
    ram, seen = rows["the game's RAM (x_pos - camera_x)"], rows["the Mario detector"]
    assert int(ram[0]) > 50 and int(seen[0]) > 50                   # steps where the camera scrolls right
    assert seen[4].startswith("0.00 %")                                  # never 5 px or more back: camera_follow 4
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = subprocess.run([sys.executable, str(script), "--data", str(empty)], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "no episodes" in bad.stderr
