"""The playability figures: the Mario detector against the game's own positions on real emulator frames,
and the per-run figures on runs whose answer is known (the real game itself, a frozen and a blurred dream)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from smbwm.data.episode import list_episodes, read_episode
from smbwm.evaluation.playability import (HUD_LABEL_CELLS, PlayabilityConfig, Track, early_misses,
                                          frame_playability, hud_clock_kept, hud_labels_kept, summarise, track_figures)
from smbwm.models.mario_sprite import count_marios, find_mario, game_mario_position


def _blur(frames: np.ndarray) -> np.ndarray:
    """What the low-res model space keeps of a frame: 4x4 area average, drawn back at full size."""
    t = len(frames)
    low = frames.reshape(t, 60, 4, 64, 4, 3).mean((2, 4)).round().astype(np.uint8)
    return low.repeat(4, 1).repeat(4, 2)


def _episodes(real_episodes):
    return [read_episode(p) for p in list_episodes(real_episodes)]


def test_mario_detector_agrees_with_the_games_positions_on_real_frames(real_episodes):
    shown_all, near_all, blurred = [], [], []
    for ep in _episodes(real_episodes):
        gx, gy = game_mario_position(ep.info["x_pos"], ep.info["camera_x"], ep.info["y_pos"])
        visible = np.isfinite(gx)
        shown, x, y = find_mario(ep.frames)
        shown_all.append(shown[visible])
        near_all.append((np.hypot(x - gx, y - gy) <= 8)[visible])
        blurred.append(find_mario(_blur(ep.frames))[0])
    shown, near, blurred = map(np.concatenate, (shown_all, near_all, blurred))
    assert len(shown) > 200
    assert shown.mean() >= 0.98 and near.mean() >= 0.95
    assert blurred.mean() <= 0.05                          # a blob of Mario's colours is not a sharp Mario


def test_a_frame_without_mario_shows_none(real_episodes):
    ep = _episodes(real_episodes)[0]
    f = ep.frames[10:11].copy()
    gx, gy = game_mario_position(ep.info["x_pos"][10:11], ep.info["camera_x"][10:11], ep.info["y_pos"][10:11])
    x, y = int(gx[0]), int(gy[0])
    f[0, y - 24:y + 24, max(x - 24, 0):x + 24] = f[0, 40, 0]       # paint the sky over him
    assert find_mario(ep.frames[10:11])[0][0] and not find_mario(f)[0][0]


def test_mario_copies_are_counted_and_the_real_game_has_one(real_episodes):
    frames = np.concatenate([ep.frames for ep in _episodes(real_episodes)])
    n = count_marios(frames)
    shown = find_mario(frames)[0]
    assert (n[shown] == 1).mean() >= 0.98 and (n[~shown] == 0).all()      # the game draws one Mario
    ep = _episodes(real_episodes)[0]
    f = ep.frames[10:11].copy()
    gx, gy = game_mario_position(ep.info["x_pos"][10:11], ep.info["camera_x"][10:11], ep.info["y_pos"][10:11])
    x, y = int(gx[0]), int(gy[0])
    sprite = f[0, y - 12:y + 12, x - 12:x + 12].copy()
    dx = 60 if x < 160 else -60                                           # a copy 60 px to the side
    f[0, y - 12:y + 12, x - 12 + dx:x + 12 + dx] = sprite
    assert count_marios(ep.frames[10:11])[0] == 1 and count_marios(f)[0] == 2


def _long_episode(real_episodes):
    return max(_episodes(real_episodes), key=lambda e: int(np.abs(np.diff(e.info["camera_x"])).sum()))


def test_track_figures_of_the_real_game_a_frozen_and_a_blurred_dream(real_episodes):
    cfg = PlayabilityConfig(stall_steps=5)
    ep = _long_episode(real_episodes)
    real = ep.frames
    xy = game_mario_position(ep.info["x_pos"], ep.info["camera_x"], ep.info["y_pos"])
    assert int(np.diff(ep.info["camera_x"]).sum()) >= cfg.min_travel_px
    perfect = track_figures(Track(real, real, xy), cfg, [1, 15])
    assert perfect["mario_shown"] >= 0.95 and perfect["near_early"] >= 0.9 and perfect["mario_copies"] <= 0.02
    assert perfect["dream_travel_same_steps_px"] == perfect["game_travel_px"] > 0 and perfect["longest_stall"] == 0
    assert perfect["death_step"] == perfect["steps"] and perfect["sharpness_ratio"] == pytest.approx(1)
    assert perfect["psnr_240x256"]["15"] == pytest.approx(100, abs=1e-3)

    frozen = track_figures(Track(np.repeat(real[:1], len(real), 0), real, xy), cfg)
    assert frozen["camera_travel_px"] == 0 and frozen["longest_stall"] >= cfg.stall_steps
    assert frozen["death_step"] < frozen["steps"]

    blurred = track_figures(Track(np.concatenate([real[:1], _blur(real[1:])]), real, xy), cfg)
    assert blurred["mario_shown"] <= 0.05 and blurred["sharpness_ratio"] < 0.8
    assert blurred["death_step"] <= 1                     # Mario lost from the first dreamed frame on

    em = blurred["early_misses"]
    assert em["scored"] >= 10 and em["missing"] == em["scored"] and perfect["early_misses"]["near"] == em["scored"]

    from smbwm.models.world_model import WorldModel           # the shipped tile book: cells the game draws
    from conftest import ROOT
    tiles = WorldModel.load(ROOT / "checkpoints")[0].tiles
    with_tiles = track_figures(Track(real, real, xy), cfg, tiles=tiles)
    assert with_tiles["game_tiles"] == with_tiles["game_tiles_real"] > 0.95 and with_tiles["game_tiles_hud"] > 0.95
    blurred_tiles = track_figures(Track(np.concatenate([real[:1], _blur(real[1:])]), real, xy), cfg, tiles=tiles)
    assert blurred_tiles["game_tiles"] < with_tiles["game_tiles"] - 0.1 and blurred_tiles["game_tiles_real"] == with_tiles["game_tiles_real"]
    assert summarise([with_tiles, blurred_tiles], cfg)["game_tiles"] == pytest.approx(
        (with_tiles["game_tiles"] + blurred_tiles["game_tiles"]) / 2)

    s = summarise([perfect, frozen], cfg)
    assert s["runs"] == 2 and s["camera_travel_within_tolerance"] == 0.5 and s["alive_at_end"] == 0.5
    one = frame_playability(real)
    assert one["camera_travel_px"] == perfect["camera_travel_px"] and one["mario_shown_fraction"] >= 0.95


def test_end_figures_say_whether_the_dream_ends_with_the_game(real_episodes):
    cfg = PlayabilityConfig(end_tolerance=3)
    ep = _long_episode(real_episodes)
    real, n = ep.frames, len(ep.frames) - 1
    game_over_at = n // 2                                 # a game that ends halfway through the dream's run
    ends = np.zeros(n, bool)

    def run(end_at):
        e = ends.copy()
        if end_at is not None:
            e[end_at - 1:] = True
        return track_figures(Track(real, real[:game_over_at + 1], None, e), cfg)

    together, early, never = run(game_over_at + 2), run(2), run(None)
    assert together["dream_end_step"] == game_over_at + 2 and never["dream_end_step"] is None
    assert "dream_end_step" not in track_figures(Track(real, real), cfg)          # no end model: no end figures
    s = summarise([together, early, never], cfg)
    assert s["dream_ended"] == pytest.approx(2 / 3) and s["game_ended"] == 1.0
    assert s["ended_with_game"] == pytest.approx(1 / 3) and s["ended_early"] == pytest.approx(1 / 3)
    assert s["dream_end_step_median"] == pytest.approx((game_over_at + 4) / 2)


def test_early_misses_say_how_the_dream_misses_the_games_mario():
    cfg = PlayabilityConfig(early_steps=6, near_px=8)
    gx, gy = np.full(7, 100.0), np.full(7, 150.0)
    gx[5] = np.nan                                        # the game shows no Mario: not scored
    x = np.array([101, np.nan, 100, 120, 112, 100, 100.0])
    y = np.array([152, 150, 170, 150, 162, 150, 150.0])
    m = early_misses(x, y, gx, gy, cfg)                   # step 7 is past early_steps
    assert m == {"scored": 5, "near": 1, "missing": 1, "height": 1, "along": 1, "both": 1}
    s = summarise([{**r, "early_misses": m} for r in _two_runs()], cfg)
    assert s["early_misses"] == {"near": 0.2, "missing": 0.2, "height": 0.2, "along": 0.2, "both": 0.2}


def _two_runs():
    run = {"steps": 10, "game_steps": 10, "mario_shown": 1.0, "mario_copies": 0.0, "camera_travel_px": 50,
           "game_travel_px": 50, "dream_travel_same_steps_px": 50, "longest_stall": 0, "death_step": 10,
           "sharpness_ratio": 1.0}
    return [run, dict(run)]


def test_the_games_own_reference_replays_the_window_and_presses_late(real_episodes):
    """The late-input reference (evaluation.long_play): the episode replayed on the emulator reaches the
    window's recorded frames exactly; pressed a NES frame late, the game drifts from its own recording."""
    from smbwm.evaluation.fidelity import pick_segments
    from smbwm.data.spawn_tools import replay_level
    from smbwm.evaluation.long_play import late_input_reference, play_real_game
    from smbwm.evaluation.metrics import psnr_per_frame
    ep = _long_episode(real_episodes)
    path = next(p for p in list_episodes(real_episodes) if read_episode(p, frames=False).attrs == ep.attrs)
    seg = pick_segments([path], 4 + 40, 1, np.random.default_rng(0), "test", with_info=True)[0]
    start = seg.source[1] + 3                                  # the episode's frame the window starts from
    acts = seg.actions[3:]
    on_time, (gx, gy) = play_real_game(replay_level(ep), ep.actions[:start], acts)
    assert np.array_equal(on_time, seg.frames[3:])             # the emulator is deterministic
    real_x, real_y = game_mario_position(*(v[3:] for v in seg.info))
    assert np.allclose(gx[1:], real_x[1:], equal_nan=True) and np.allclose(gy[1:], real_y[1:], equal_nan=True)
    late, _ = play_real_game(replay_level(ep), ep.actions[:start], acts, late_frames=1)
    assert np.array_equal(late[0], seg.frames[3]) and len(late) == len(on_time)
    assert psnr_per_frame(late[1:], on_time[1:]).min() < 60  # a frame late, the picture is not the recording's

    cfg = PlayabilityConfig(window_steps=40, psnr_steps=[1, 15], late_frames=0)
    exact = late_input_reference([seg], 4, cfg)              # no lag: the reference is the game itself
    assert exact["runs"] == 1 and exact["windows_not_replayed"] == 0
    assert exact["psnr_240x256"]["15"] == pytest.approx(100) and exact["camera_travel_within_tolerance"] in (1.0, None)
    lagged = late_input_reference([seg], 4, PlayabilityConfig(window_steps=40, psnr_steps=[1, 15], late_frames=1))
    assert lagged["runs"] == 1 and lagged["late_frames"] == 1 and lagged["psnr_240x256"]["15"] < 100
    unknown = late_input_reference([dataclasses.replace(seg, source=None)], 4, cfg)
    assert unknown["windows_not_replayed"] == 1 and "runs" not in unknown   # nothing to replay: counted, not scored


def test_hud_labels_count_what_a_player_reads_in_the_status_bar(real_episodes):
    """The game against itself keeps every label; a faded "x", a world number turned into another digit
    and a blanked word are lost from the step they appear; once the game has ended its last frame is the
    reference, and the clock ticking is no label."""
    ep = _long_episode(real_episodes)
    real = ep.frames
    assert hud_labels_kept(real[1:], real).tolist() == [1.0] * (len(real) - 1)
    n = len(HUD_LABEL_CELLS)
    dream = real[1:].copy()
    bg = real[0, 0, 0]
    dream[20:, 24:32, 96:104] = bg                                    # the "x" goes blank from step 21
    dream[40:, 24:32, 152:160] = real[0, 24:32, 24:32]                # the world number becomes the score's first digit
    dream[:, 24:32, 208:232] = bg                                     # the clock (no label) blanked all along
    kept = hud_labels_kept(dream, real)
    assert kept[:20].tolist() == [1.0] * 20 and kept[20:40] == pytest.approx((n - 1) / n)
    assert kept[40:] == pytest.approx((n - 2) / n)
    # the game ended after 10 steps: its last frame's labels go on counting
    assert hud_labels_kept(real[1:], real[:11]).tolist() == [1.0] * (len(real) - 1)
    cfg = PlayabilityConfig()
    xy = game_mario_position(ep.info["x_pos"], ep.info["camera_x"], ep.info["y_pos"])
    run = track_figures(Track(np.concatenate([real[:1], dream]), real, xy), cfg)
    assert run["hud_labels"] == pytest.approx(kept.mean()) and run["hud_labels_end"] == pytest.approx((n - 2) / n)
    assert summarise([run, track_figures(Track(real, real, xy), cfg)], cfg)["hud_labels"] == pytest.approx((kept.mean() + 1) / 2)


def test_the_clock_figure_counts_steps_whose_clock_is_the_games_while_the_game_runs(real_episodes):
    """The game against itself keeps its clock; frames one step late miss exactly the steps at which the
    game's clock has just ticked; steps after the game has ended are not scored."""
    ep = _long_episode(real_episodes)
    real = ep.frames
    assert hud_clock_kept(real[1:], real).all()
    late = real[:-1]                                                   # every frame one step late
    kept = hud_clock_kept(late, real)
    clock_changes = np.flatnonzero((real[1:, 24:32, 208:232] != real[:-1, 24:32, 208:232]).any((1, 2, 3)))
    assert len(clock_changes) >= 2 and (~kept).sum() == len(clock_changes[clock_changes < len(late)])
    assert len(hud_clock_kept(real[1:], real[:11])) == 10             # the game ended after 10 steps
    cfg = PlayabilityConfig()
    xy = game_mario_position(ep.info["x_pos"], ep.info["camera_x"], ep.info["y_pos"])
    run = track_figures(Track(np.concatenate([real[:1], late]), real, xy), cfg)
    assert run["hud_clock"] == pytest.approx(kept.mean())
    assert summarise([run, track_figures(Track(real, real, xy), cfg)], cfg)["hud_clock"] == pytest.approx((kept.mean() + 1) / 2)
