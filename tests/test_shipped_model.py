"""The shipped default world model (checkpoints/) and spawns (spawn/) play and respond to actions."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import ROOT

from smbwm import actions as A
from smbwm.envs.world_model_env import WorldModelEnv
from smbwm.models.motion import estimate_scrolls

CKPT, SPAWNS = ROOT / "checkpoints", ROOT / "spawn"
RUN_RIGHT = A.to_byte(["right", "B"])


def _play(env, spawn: int, action: int, steps: int = 30) -> np.ndarray:
    obs, _ = env.reset(seed=0, options={"spawn": spawn})
    frames = [obs]
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(action)
        assert not term
        frames.append(obs)
    return np.stack(frames)


@pytest.fixture(scope="module")
def env():
    return WorldModelEnv(end_episodes=False)   # the shipped checkpoint and spawns; these tests play on past an end


def test_shipped_checkpoint_is_small_fp16_safetensors():
    for f in ("denoiser.safetensors", "upsampler.safetensors", "model.json", "report.json", "README.md"):
        assert (CKPT / f).exists(), f
    size = sum(f.stat().st_size for f in CKPT.glob("*.safetensors"))
    assert size < 30e6
    assert len(list(SPAWNS.iterdir())) >= 4


def test_dream_runs_30_steps_and_right_scrolls_the_scene_differently_from_left(env):
    right = _play(env, 0, RUN_RIGHT)
    left = _play(env, 0, A.to_byte(["left"]))
    for f in (right, left):
        assert f.shape == (31, 240, 256, 3) and f.dtype == np.uint8
        assert 40 < f.mean() < 220 and f.std() > 10        # a picture, not a flat or saturated field
    sr, sl = estimate_scrolls(right).sum(), estimate_scrolls(left).sum()
    assert sr > 0 and sr > sl + 16                          # running right moves the camera right
    assert not np.array_equal(right[-1], left[-1])


def test_model_card_numbers_come_from_the_committed_report():
    report = json.loads((CKPT / "report.json").read_text())
    card = (CKPT / "README.md").read_text()
    s = next(iter(report["sets"].values()))
    for v in (s["next_frame"]["psnr_240x256"], s["next_frame"]["psnr_240x256_copy_last"],
              s["rollout"]["psnr_240x256"]["15"], report["speed"]["fps"]):
        assert f"{v:.2f}" in card
    meta = json.loads((CKPT / "model.json").read_text())
    assert report["training_step"] == meta["step"]
    assert re.search(rf"{meta['step']} denoiser steps", card)


def test_model_card_curve_and_sampler_ablation_come_from_committed_reports():
    card = (CKPT / "README.md").read_text()
    curve = sorted((CKPT / "curve").glob("*.json"))
    assert len(curve) >= 3 and (CKPT / "curve" / "fidelity_curve.png").exists()
    for f in curve:
        rep = json.loads(f.read_text())
        for name, s in rep["sets"].items():
            assert f"| {name} | {rep['training_step']} | {s['next_frame']['psnr_240x256']:.2f} |" in card
    from smbwm.models.sampler import load_sampler
    step = json.loads((CKPT / "model.json").read_text())["step"]
    for preset in ("fast", "sharp"):                      # the same weights with the other presets
        rep = json.loads((CKPT / f"report_{preset}.json").read_text())
        assert rep["sampler"]["num_steps"] == load_sampler(preset).num_steps and rep["training_step"] == step
        for s in rep["sets"].values():
            assert f"{s['rollout']['psnr_240x256']['15']:.2f}" in card and f"{s['next_frame']['psnr_240x256']:.2f}" in card
            assert f"{100 * s['playability']['mario_shown']:.0f} %" in card


def test_holding_right_with_jumps_moves_the_camera_from_the_1_1_spawn(env):
    """The hands-on input of the playability report, 60 steps (4 s) from spawn 01 (1-1): the camera
    follows and Mario is a sharp sprite in at least 90 % of the frames (the issue's bar; it holds with
    the default `game` sampler, not with the one-step `fast` one)."""
    from smbwm.evaluation.playability import PlayabilityConfig, frame_playability, hands_on_actions
    obs, _ = env.reset(seed=0, options={"spawn": 0})
    frames = [obs] + [env.step(int(a))[0] for a in hands_on_actions(60, PlayabilityConfig())]
    fig = frame_playability(np.stack(frames))
    assert fig["camera_travel_px"] >= 120 and fig["longest_camera_stop"] <= 15
    assert fig["mario_shown_fraction"] >= 0.9


def test_model_card_playability_rows_come_from_the_committed_report():
    rep = json.loads((CKPT / "report.json").read_text())
    card = (CKPT / "README.md").read_text()
    for name, s in rep["sets"].items():
        p = s["playability"]
        ps = " / ".join(f"{v:.2f}" for v in p["psnr_240x256"].values())
        assert f"| {name} | {p['runs']} | {100 * p['mario_shown']:.0f} % |" in card and ps in card
    assert (CKPT / "report_minute.gif").exists() and rep["playability_spawns"]["all"]["runs"] == len(list(SPAWNS.glob("*/meta.json")))


def test_model_card_shows_the_dream_beside_the_games_own_reference():
    """checkpoints/report_reference.json: each set's dream row and, under it, the game's own run with its
    input a NES frame late, on the same windows; the card copies both."""
    ref = json.loads((CKPT / "report_reference.json").read_text())
    card = (CKPT / "README.md").read_text()
    for name, s in ref["sets"].items():
        p, late = s["playability"], s["playability"]["game_input_late"]
        assert late["windows_not_replayed"] == 0 and late["runs"] == p["runs"]
        assert f"| {name} | {p['runs']} | {100 * p['mario_shown']:.0f} % |" in card
        assert (f"the game itself, input {late['late_frames']} NES frame late | {name} | {late['runs']} | "
                f"{100 * late['mario_shown']:.0f} % |") in card


def test_the_documented_cpu_recipe_builds_the_shipped_model():
    """`python src/main.py experiment=cpu ... init_from=checkpoints` (README) must build a model the
    shipped weights fit, with the shipped denoiser's training options."""
    from conftest import compose
    from main import build
    from smbwm.models.world_model import WorldModel
    cfg = compose("trainer", ["experiment=cpu"])
    shipped, meta = WorldModel.load(ROOT / "checkpoints")
    denoiser, upsampler = build(cfg.model, "denoiser"), build(cfg.model, "upsampler")
    for name, built in (("denoiser", denoiser), ("upsampler", upsampler)):
        architecture = {k: v for k, v in meta[name].items() if k != "mario_weight"}
        assert {k: getattr(built, k) for k in architecture} == architecture, name
    model = WorldModel(denoiser, upsampler)
    model.end_model, model.tiles = shipped.end_model, shipped.tiles
    model.load_state_dict(shipped.state_dict())
