"""The trainer end to end on real episodes: tiny run, exact resume, DDP, W&B offline, bad configs,
the dream env and the evaluator on its checkpoint."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from conftest import ROOT, compose

from main import run
from smbwm.models.mario_sprite import count_marios
from smbwm.utils.checkpoint import load_tensors


def test_tiny_run_writes_checkpoints_samples_and_wandb(tiny_run):
    ck = tiny_run / "checkpoints"
    latest = ck / (ck / "latest").read_text().strip()
    for f in ("denoiser.safetensors", "upsampler.safetensors", "model.json", "train_state/state.json"):
        assert (latest / f).exists(), f
    assert len([p for p in ck.glob("step_*")]) <= 2                     # keep N
    assert json.loads((latest / "model.json").read_text())["step"] == 12
    assert list((tiny_run / "samples").glob("*.png"))
    assert list((tiny_run / "wandb").glob("offline-run-*"))             # offline by default: `wandb sync` later
    lines = [json.loads(x) for x in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert {"loss_denoise", "loss_upsampler", "lr", "samples_per_s"} <= set().union(*lines)


def test_resume_continues_exactly(real_episodes, tmp_path):
    common = ["experiment=tiny", f"data.dir={real_episodes}", "wandb.mode=disabled", "training.checkpoint_every=3",
              "training.keep=10", "data.prefetch=true"]
    full = tmp_path / "full"
    run(compose("trainer", common + ["training.steps=6"]), full)
    part = tmp_path / "part"
    run(compose("trainer", common + ["training.steps=3"]), part)
    run(compose("trainer", common + ["training.steps=6", "resume=true"]), part)
    a = load_tensors(full / "checkpoints/step_0000006/train_state/model.safetensors")
    b = load_tensors(part / "checkpoints/step_0000006/train_state/model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ea = load_tensors(full / "checkpoints/step_0000006/denoiser.safetensors")
    eb = load_tensors(part / "checkpoints/step_0000006/denoiser.safetensors")
    assert all(torch.equal(ea[k], eb[k]) for k in ea)


@pytest.mark.parametrize("override, message", [
    ("data.dir=/nonexistent/episodes", "not a directory"),
    ("model.denoiser.channels=[8,8]", "same length"),
    ("data.batch_size=0", "must be positive"),
    ("training.no_such_key=1", "no_such_key"),
])
def test_bad_configs_fail_with_one_line(real_episodes, override, message):
    data = [] if override.startswith("data.dir") else [f"data.dir={real_episodes}"]
    key = override.split("=")[0]
    ov = ("+" + override) if key == "training.no_such_key" else override
    r = subprocess.run([sys.executable, "src/main.py", "experiment=tiny", "wandb.mode=disabled", *data, ov,
                        "hydra.run.dir=" + str(Path(os.environ.get("TMPDIR", "/tmp")) / "bad_cfg_run")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and message in err[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_empty_dataset_fails_clearly(tmp_path):
    r = subprocess.run([sys.executable, "src/main.py", "experiment=tiny", "wandb.mode=disabled", f"data.dir={tmp_path}",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "no training episodes" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(real_episodes, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "src/main.py", "experiment=tiny", f"data.dir={real_episodes}", "wandb.mode=disabled",
                        "training.steps=4", "training.checkpoint_every=4", f"hydra.run.dir={tmp_path / 'ddp'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "ddp/checkpoints/step_0000004/model.json").exists()


def test_dream_env_passes_the_checker_and_responds_to_actions(tiny_checkpoint, tiny_spawns):
    import smbwm.envs  # noqa: F401 - registers smbwm/Dream-v0
    from gymnasium.utils.env_checker import check_env
    kw = dict(checkpoint=str(tiny_checkpoint), spawn_dir=str(tiny_spawns), max_episode_steps=5)
    check_env(gymnasium.make("smbwm/Dream-v0", report_timings=False, **kw).unwrapped, skip_render_check=True)
    env = gymnasium.make("smbwm/Dream-v0", **kw)
    obs, info = env.reset(seed=0, options={"spawn": 0})
    assert obs.shape == (240, 256, 3) and obs.dtype == np.uint8 and info["step"] == 0
    frames = {}
    for a in (0x80, 0x40):                     # right vs left from the same spawn and seed
        env.reset(seed=1, options={"spawn": 0})
        frames[a] = [env.step(a)[0] for _ in range(3)]
    assert any(not np.array_equal(x, y) for x, y in zip(frames[0x80], frames[0x40]))
    _, _, term, trunc, info = env.step(0)
    assert set(info["timings_ms"]) >= {"denoiser", "upsampler", "mario_check", "total"}
    retries = env.unwrapped.sampler.mario_retries
    assert retries > 0 and 0 <= info["redraws"] <= retries                       # the default `game` preset checks
    lost = info["mario_lost_steps"]
    for _ in range(3):                         # frames in a row without a sharp Mario, as the detector sees them
        obs, *_, info = env.step(0x80)
        lost = 0 if count_marios(obs[None])[0] else lost + 1
        assert info["mario_lost_steps"] == lost
    env.close()


@pytest.mark.slow
def test_compiled_dream_draws_the_same_frames(tiny_checkpoint, tiny_spawns):
    from smbwm.envs.world_model_env import WorldModelEnv
    frames = {}
    for compiled in (False, True):
        env = WorldModelEnv(checkpoint=tiny_checkpoint, spawn_dir=tiny_spawns, compile=compiled)
        assert (env.model.denoiser._compiled_call_impl is not None) == compiled    # nn.Module.compile() took
        env.reset(seed=3, options={"spawn": 0})
        frames[compiled] = np.stack([env.step(a)[0] for a in (0x80, 0x81, 0x80, 0x40)]).astype(int)
    diff = np.abs(frames[True] - frames[False])
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 8      # same pictures up to float rounding


def test_dream_env_errors_are_one_line(tmp_path, tiny_checkpoint):
    from smbwm.envs.world_model_env import CheckpointError, SpawnError, WorldModelEnv
    with pytest.raises(CheckpointError, match="no world-model checkpoint"):
        WorldModelEnv(checkpoint=tmp_path)
    env = WorldModelEnv(checkpoint=tiny_checkpoint, spawn_dir=tmp_path)
    with pytest.raises(SpawnError, match="no spawn folders"):
        env.reset()
    bad = tmp_path / "bad_spawn"
    bad.mkdir()
    np.save(bad / "full_res.npy", np.zeros((4, 60, 64, 3), np.uint8))
    np.save(bad / "act.npy", np.zeros(4, np.uint8))
    with pytest.raises(SpawnError, match="240, 256, 3"):
        env.reset(options={"spawn": bad})


def test_evaluate_writes_its_report(tiny_checkpoint, real_episodes, tiny_spawns, tmp_path):
    out = tmp_path / "report.json"
    r = subprocess.run([sys.executable, "src/evaluate.py", f"checkpoint={tiny_checkpoint}", f"data.dir={real_episodes}",
                        f"out={out}", "eval.next_frame_samples=8", "eval.rollouts=2", "eval.horizons=[1,5,15,30]",
                        "eval.speed_steps=3", "playability.windows=2", "playability.window_steps=20",
                        "playability.psnr_steps=[1,15]", "playability.spawn_steps=12", f"spawn_dir={tiny_spawns}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(out.read_text())
    s = rep["sets"]["episodes"]
    nf = s["next_frame"]
    assert nf["samples"] == 8 and 0 < nf["psnr_240x256_copy_last"] < 100 and 0 < nf["ssim_240x256"] <= 1
    assert 0 < nf["psnr_240x256_upsampler_real_lowres"] < 100          # the upsampler's share of the error
    for k in ("mario_drawn", "mario_drawn_upsampler_real_lowres"):     # Mario drawn near the game's, next frame
        assert 0 <= nf[k] <= 1, k
    assert set(s["rollout"]["psnr_240x256"]) == set(s["rollout"]["psnr_240x256_real_scroll"]) == {"1", "5", "15", "30"}
    assert 0 < s["rollout"]["psnr_240x256_real_scroll"]["30"] < 100
    assert 0 <= s["controllability"]["direction_agreement_all"] <= 1
    assert set(s["controllability"]["direction_agreement_by_step"]) == {"1-3", "4-8", "9-15", "16-30"}
    assert s["controllability_real_context"]["steps"] == s["controllability"]["steps"] == 2 * 30
    from smbwm.models.sampler import load_sampler
    game = load_sampler()                                 # the default preset, recorded whole
    assert rep["speed"]["fps"] > 0 and rep["speed"]["denoising_steps"] == game.num_steps
    assert rep["sampler"]["s_churn"] == game.s_churn and rep["sampler"]["sigma_min"] == game.sigma_min
    assert out.with_suffix(".png").exists() and out.with_suffix(".gif").exists()
    # how to collect the evaluated episodes again, as each file records it (conftest's two collections)
    assert rep["episodes"] == {"episodes": [
        "python src/collect.py agent=balanced episodes=3 max_steps=80 level=1-1 out_dir=<dir> seed=2",
        "python src/collect.py agent=scripted episodes=3 max_steps=80 'level=[1-1,1-2]' out_dir=<dir> seed=1"]}
    assert "episodes_without_command" not in rep
    play = s["playability"]                               # 20-step open-loop windows, real actions
    assert play["runs"] == 2 and play["steps"] == 20 and set(play["psnr_240x256"]) == {"1", "15"}
    assert 0 <= play["mario_shown"] <= 1 and 0 <= play["alive_at_end"] <= 1 and play["sharpness_ratio"] > 0
    windows = play["per_window"]                          # each window's own figures, named by episode and frame
    assert len(windows) == 2 and all((real_episodes / w["episode"]).exists() and w["start"] >= 0 for w in windows)
    assert play["mario_shown"] == pytest.approx(np.mean([w["mario_shown"] for w in windows]))
    _compare_reports_pairs_the_same_windows(rep, tmp_path)
    spawns = rep["playability_spawns"]                    # hands-on input from each spawn, the real game beside
    assert spawns["steps"] == 12 and spawns["all"]["runs"] == len(spawns["per_spawn"]) == 3
    assert all(0 < r["game_steps"] <= 12 and 0 <= r["death_step"] <= 12 for r in spawns["per_spawn"].values())
    assert out.with_name("report_minute.gif").exists()
    # the game's own reference: the same windows and spawn minutes on the emulator, input a NES frame late
    ref, ref_spawns = play["game_input_late"], spawns["game_input_late"]
    assert ref["late_frames"] == ref_spawns["late_frames"] == 1 and ref["windows_not_replayed"] == 0
    assert ref["runs"] == 2 and ref_spawns["runs"] == 3 and 0 <= ref["mario_shown"] <= 1
    assert [(w["episode"], w["start"]) for w in ref["per_window"]] == [(w["episode"], w["start"]) for w in windows]
    assert set(ref_spawns["per_spawn"]) == set(spawns["per_spawn"])
    from PIL import Image
    sheet = Image.open(out.with_name("report_spawns.png"))  # a row per spawn; the 12-step minute has one moment
    assert sheet.size == (256 + 4, 3 * (240 + 12))
    # the fidelity curve reads evaluate reports: this one and the shipped model's
    png, shipped = tmp_path / "curve.png", ROOT / "checkpoints" / "report.json"
    r = subprocess.run([sys.executable, "scripts/fidelity_curve.py", str(out), str(shipped), "--out", str(png)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    step = json.loads(shipped.read_text())["training_step"]
    assert f"| episodes | {rep['training_step']} |" in r.stdout and f"| heldout_levels | {step} |" in r.stdout
    assert Image.open(png).size[0] == 3 * 360
    bad = tmp_path / "bad.json"
    bad.write_text('{"sets": {}}')
    r = subprocess.run([sys.executable, "scripts/fidelity_curve.py", str(bad), "--out", str(png)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not an evaluate report" in r.stderr and "Traceback" not in r.stderr


def _compare_reports_pairs_the_same_windows(rep: dict, tmp_path: Path):
    """scripts/compare_reports.py on two copies of a real report, one window changed in each: the paired
    table counts that window on the right side; a file that is no report is one line."""
    import copy
    a, b = copy.deepcopy(rep), copy.deepcopy(rep)
    for r, dream in ((a, 0), (b, 100)):                   # window 0: the game's camera 100 px, the dream's 0 / 100
        w = r["sets"]["episodes"]["playability"]["per_window"]
        w[0].update(game_travel_px=100, dream_travel_same_steps_px=dream)
        w[1].update(game_travel_px=0)                     # window 1: too little travel to be scored
    b["sets"]["episodes"]["playability"]["per_window"][1]["mario_shown"] = -1.0   # window 1: worse in b
    for r in (a, b):                                      # a set may pick the same window twice: both count
        r["sets"]["episodes"]["playability"]["per_window"].append(dict(r["sets"]["episodes"]["playability"]["per_window"][1]))
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    r = subprocess.run([sys.executable, "scripts/compare_reports.py", str(tmp_path / "a.json"), str(tmp_path / "b.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    episodes = r.stdout.split("## episodes")[1].split("## ")[0]
    assert "b against a, the same 3 runs" in episodes
    assert "| travel within ±20 % | 1 | 0 | 0 (0 / 0) | 1.00 |" in episodes    # only window 0 is scored for travel
    assert "| Mario shown (share of steps) | 0 | 2 | 1 | 0.50 |" in episodes
    assert "| a sharp Mario on screen (share of steps) |" in episodes and "## spawn minutes" in r.stdout
    (tmp_path / "rep.json").write_text(json.dumps(rep))
    r = subprocess.run([sys.executable, "scripts/compare_reports.py", str(tmp_path / "rep.json"), "--game"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]                # the game itself, a NES frame late, on the same runs
    assert r.stdout.count("the game, input late (rep) against rep, the same") == 2     # the windows and the spawn minutes
    r = subprocess.run([sys.executable, "scripts/compare_reports.py", str(tmp_path / "a.json"), str(ROOT / "README.md")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "README.md: not an evaluate report" in r.stderr and "Traceback" not in r.stderr


def test_evaluate_names_a_bad_sampler_setting_in_one_line(tiny_checkpoint, real_episodes, tmp_path):
    r = subprocess.run([sys.executable, "src/evaluate.py", f"checkpoint={tiny_checkpoint}", f"data.dir={real_episodes}",
                        f"out={tmp_path / 'r.json'}", "sampler.prior_fill=mirror"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "sampler.prior_fill" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "r.json").exists()


def test_evaluate_plays_the_games_own_reference_alone(tiny_checkpoint, real_episodes, tiny_spawns, tmp_path):
    """reference_only=true: the windows and spawn minutes on the emulator with the input a NES frame late,
    no dream (what the playability figures can ask of any model); a reference of no lag is refused."""
    out = tmp_path / "reference.json"
    args = [sys.executable, "src/evaluate.py", f"checkpoint={tiny_checkpoint}", f"data.dir={real_episodes}",
            "reference_only=true", "playability.windows=2", "playability.window_steps=20",
            "playability.psnr_steps=[1,15]", "playability.spawn_steps=12", f"spawn_dir={tiny_spawns}"]
    r = subprocess.run(args + [f"out={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rep = json.loads(out.read_text())
    play, spawns = rep["sets"]["episodes"]["playability"], rep["playability_spawns"]
    assert set(play) == {"game_input_late"} and play["game_input_late"]["runs"] == 2
    assert spawns["game_input_late"]["runs"] == 3 and "all" not in spawns and "speed" not in rep
    assert not out.with_name("report_minute.gif").exists()
    compare = [sys.executable, "scripts/compare_reports.py", str(out)]   # such a report is only the game's column
    r = subprocess.run(compare, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "without playability figures" in r.stderr
    r = subprocess.run(compare + ["--game"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "| figure | the game, input late (reference) |" in r.stdout, r.stderr
    r = subprocess.run(args + [f"out={tmp_path / 'r.json'}", "playability.late_frames=0"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "playability.late_frames" in r.stderr and "Traceback" not in r.stderr


def test_collect_inside_the_dream_writes_valid_episodes(tiny_checkpoint, tiny_spawns, tmp_path):
    from conftest import run_collect
    from smbwm.data.episode import list_episodes, read_episode
    run_collect(["env=dream", f"env.checkpoint={tiny_checkpoint}", f"env.spawn_dir={tiny_spawns}", "agent=random",
                 "episodes=1", "max_steps=6", f"out_dir={tmp_path}"])
    ep = read_episode(list_episodes(tmp_path)[0])
    assert ep.attrs["source"] == "dream/random" and ep.frames.shape == (7, 240, 256, 3) and ep.truncated[-1]


def test_init_from_a_shipped_checkpoint_continues_its_step_count(tiny_checkpoint, real_episodes, tmp_path):
    import json as _json
    import shutil
    from smbwm.models.end_model import EndModel, EndModelConfig
    from smbwm.models.tiles import CELL, TileBook
    from smbwm.models.world_model import WorldModel
    # a shipped checkpoint also holds an end model and a tile book, which the trainer does not train
    shipped = tmp_path / "shipped"
    shutil.copytree(tiny_checkpoint, shipped)
    model, meta = WorldModel.load(shipped)
    model.end_model = EndModel(EndModelConfig(channels=4, threshold=0.7))
    model.tiles = TileBook(torch.randint(0, 50, (5, CELL)), torch.arange(1, 6))
    model.save(shipped, meta)
    step = meta["step"]
    run_dir = tmp_path / "run"
    run(compose("trainer", ["experiment=tiny", f"data.dir={real_episodes}", "wandb.mode=disabled",
                            f"init_from={shipped}", f"training.steps={step + 2}", "training.warmup=10",
                            f"training.checkpoint_every={step + 2}"]), run_dir)
    out = run_dir / "checkpoints" / f"step_{step + 2:07d}"
    assert _json.loads((out / "model.json").read_text())["step"] == step + 2
    # the fresh optimizer warms up again from the initial step instead of starting at full rate
    assert _json.loads((out / "train_state" / "state.json").read_text())["lr_origin"] == step
    lrs = [_json.loads(line)["lr"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if "lr" in line]
    assert lrs and max(lrs) < _json.loads((out / "model.json").read_text())["config"]["training"]["lr"]
    # the end model and tile book reach the run's checkpoints unchanged
    written, _ = WorldModel.load(out)
    assert written.end_model.cfg.threshold == 0.7 and torch.equal(written.tiles.tiles, model.tiles.tiles)
    for a, b in zip(written.end_model.state_dict().values(), model.end_model.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-3)


def test_lead_frames_extend_the_same_window_backwards(real_episodes):
    from smbwm.data.segments import SegmentSampler, load_lowres_episodes
    from smbwm.data.episode import list_episodes
    eps = load_lowres_episodes(list_episodes(real_episodes), real_episodes)
    plain, lead = SegmentSampler(eps, 4, seed=3).sample(8), SegmentSampler(eps, 4, seed=3).sample(8, lead=2)
    assert lead["obs"].shape[1] == 6 and lead["act"].shape[1] == 6 and lead["past_scroll"].shape[1] == 5
    for k in ("obs", "act", "past_scroll"):
        assert torch.equal(lead[k][:, 2:], plain[k]), k
    assert torch.equal(lead["target"], plain["target"]) and torch.equal(lead["scroll"], plain["scroll"])


def _trainer(cfg, episodes_dir, run_dir):
    """A Trainer built the way main.py builds it, on the real fixture episodes."""
    from smbwm.data.episode import list_episodes
    from main import build
    from smbwm.training.trainer import Trainer
    return Trainer(build(cfg, "training"), build(cfg, "data"), build(cfg.model, "denoiser"), build(cfg.model, "upsampler"),
                   build(cfg, "sampler"), run_dir, list_episodes(episodes_dir), {"mode": "disabled"}, {})


def test_self_context_replaces_the_last_frames_of_part_of_the_batch_by_model_drawings(real_episodes, tmp_path):
    from smbwm.models.world_model import to_model
    cfg = compose("trainer", ["experiment=tiny", f"data.dir={real_episodes}", "wandb.mode=disabled",
                              "training.self_context_steps=2", "training.self_context_fraction=0.5",
                              "model.denoiser.sigma_max_fraction=0.5", "training.steps=3"])
    tr = _trainer(cfg, real_episodes, tmp_path)
    batch = tr.segments.sample(8, lead=2)
    real = to_model(batch["obs"])
    obs, act, past = tr.self_context(real, batch["act"], batch["past_scroll"])
    assert obs.shape == (8, 4, 3, 60, 64) and act.shape == (8, 4, 6) and past.shape == (8, 3)
    assert torch.equal(obs[4:], real[4:, 2:])                         # the other half: real frames
    assert torch.equal(obs[:4, :2], real[:4, 2:4])                    # drawn from these...
    assert not torch.equal(obs[:4, 2:], real[:4, 4:])                 # ...the last two are the model's
    assert obs.min() >= -1 and obs.max() <= 1
    assert torch.equal(past, batch["past_scroll"][:, 2:]) and torch.equal(act, batch["act"][:, 2:])
    sig = tr.model.denoiser.sample_sigma(4000, "cpu")
    assert 0.4 < (sig == 5.0).float().mean() < 0.6                   # half the batch at the sampler's sigma_max
    tr.train()                                                         # and the run trains end to end
    assert (tmp_path / "checkpoints" / "step_0000003" / "model.json").exists()


def test_scroll_agreement_is_split_by_rollout_step():
    from smbwm.evaluation.metrics import agreement_by_step
    real = np.array([[2, 2, 0, 3, 3], [0, 1, 1, 1, -1]])
    dream = np.array([[2, 0, 0, 3, -1], [0, 1, 1, 0, -1]])
    by = agreement_by_step(dream, real, [(1, 2), (3, 5)])
    assert by == {"1-2": pytest.approx(2 / 3), "3-5": pytest.approx(3 / 5)}
    assert agreement_by_step(dream, np.zeros_like(real), [(1, 5)]) == {"1-5": None}


def test_cooldown_lowers_the_learning_rate_linearly_after_a_constant_stretch(real_episodes, tmp_path):
    cfg = compose("trainer", ["experiment=tiny", f"data.dir={real_episodes}", "wandb.mode=disabled", "training.lr=1e-3",
                              "training.warmup=10", "training.cooldown_from=100", "training.cooldown_steps=50",
                              "training.cooldown_final=0.2", "training.steps=3"])
    tr = _trainer(cfg, real_episodes, tmp_path)
    lrs = {}
    for step in (4, 50, 100, 125, 150, 400):
        tr.step = step
        lrs[step] = tr._lr(1e-3)
    assert lrs[4] == pytest.approx(5e-4)                               # warm-up
    assert lrs[50] == lrs[100] == pytest.approx(1e-3)                  # constant until the cooldown
    assert lrs[125] == pytest.approx(6e-4) and lrs[150] == lrs[400] == pytest.approx(2e-4)


def test_real_scroll_rollouts_move_the_camera_with_the_real_game(tiny_checkpoint, real_episodes):
    from smbwm.data.episode import list_episodes
    from smbwm.models.sampler import load_sampler
    from smbwm.evaluation.fidelity import Rollout, pick_segments
    from smbwm.models.motion import estimate_scrolls
    from smbwm.models.world_model import WorldModel
    model, _ = WorldModel.load(tiny_checkpoint)
    segs = pick_segments(list_episodes(real_episodes), model.context + 12, 4, np.random.default_rng(0), "t")
    roll = Rollout(model, load_sampler("fast"), torch.device("cpu"), None)
    forced, _, _ = roll.run(segs, 12, real_scroll=True)
    c = model.context
    assert any(s.scrolls[c - 1:c - 1 + 12].any() for s in segs)          # the real camera moves somewhere
    for s, dream in zip(segs, forced):
        real = s.scrolls[c - 1:c - 1 + 12]
        seen = estimate_scrolls(np.concatenate([s.frames[c - 1:c], dream]))   # the camera of the dream's frames
        assert np.mean(seen == real) >= 0.75, (seen, real)


def test_training_and_data_defaults_are_written_once_in_their_dataclasses():
    import dataclasses

    from omegaconf import OmegaConf

    from smbwm.data.segments import DataConfig
    from main import build
    from smbwm.training.trainer import TrainerConfig
    cfg = compose("trainer", ["data.dir=somewhere", "training.steps=7"])
    assert build(cfg, "training") == dataclasses.replace(TrainerConfig(), steps=7)
    assert build(cfg, "data") == DataConfig(dir="somewhere")
    cpu = compose("trainer", ["experiment=cpu"])
    assert build(cpu, "training").self_context_steps == 4 and build(cpu, "data").upsampler_batch_size == 16
    # config files hold only what differs from the dataclasses
    for f in [ROOT / "config/trainer.yaml", *sorted((ROOT / "config/experiment").glob("*.yaml"))]:
        y = OmegaConf.to_container(OmegaConf.load(f))
        for section, default in (("training", TrainerConfig()), ("data", DataConfig())):
            for key, value in (y.get(section) or {}).items():
                assert key != "_target_" and value != getattr(default, key), f"{f.name}: {section}.{key}"


def test_evaluate_lists_the_collect_commands_of_its_episodes_and_counts_files_without(real_episodes, tmp_path):
    import shutil

    import h5py
    from evaluate import collect_commands
    from smbwm.data.episode import list_episodes, read_episode
    files = list_episodes(real_episodes)
    for p in files[:2]:
        shutil.copy(p, tmp_path / p.name)
    with h5py.File(tmp_path / files[0].name, "a") as f:         # a file from before collect stored its command
        del f.attrs["collect_command"]
    commands, unknown = collect_commands({"a": list_episodes(tmp_path), "b": files})
    assert commands["a"] == [read_episode(files[1], frames=False).attrs["collect_command"]] and unknown == {"a": 1}
    assert len(commands["b"]) == 2 and all(c.startswith("python src/collect.py ") for c in commands["b"])
