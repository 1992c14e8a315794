"""scripts/fit_scroll_head.py: refits only the scroll head of a real (tiny) checkpoint on real episodes.
Run as a user runs it, from another directory: the script imports the installed package, no path edits."""
import shutil
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fit_scroll_head.py"


def fit_scroll_head(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=900)


def test_fit_scroll_head_changes_only_the_head(tiny_checkpoint, real_episodes, tmp_path):
    from dataclasses import asdict

    from smbwm.models.end_model import EndModel, EndModelConfig
    from smbwm.models.world_model import END_FILE, WorldModel, add_to_checkpoint
    from dataset import main as dataset_main

    data = tmp_path / "data"
    shutil.copytree(real_episodes, data)
    assert dataset_main(["split", str(data), "--test-fraction", "0.4"]) == 0
    checkpoint = tmp_path / "with_end_model"           # the optional parts must come along
    end = EndModel(EndModelConfig())
    add_to_checkpoint(tiny_checkpoint, checkpoint, END_FILE, end.state_dict(), "end_model", asdict(end.cfg), {})
    out = tmp_path / "fitted"
    r = fit_scroll_head("--checkpoint", checkpoint, "--data", data, "--out", out, "--steps", 6, "--batch", 8,
                        cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "held out after" in r.stdout and "open_loop" in r.stdout
    before, _ = WorldModel.load(checkpoint)
    after, meta = WorldModel.load(out)
    assert meta["scroll_head_fit"]["steps"] == 6 and meta["step"] > 0
    assert after.end_model is not None
    sb, sa = before.state_dict(), after.state_dict()
    head = [k for k in sb if k.startswith("denoiser.scroll_head.")]
    assert head and any(not torch.equal(sb[k], sa[k]) for k in head)
    assert all(torch.equal(sb[k], sa[k]) for k in sb if k not in head)


def test_fit_scroll_head_rejects_a_folder_without_checkpoint(real_episodes, tmp_path):
    r = fit_scroll_head("--checkpoint", tmp_path, "--data", real_episodes, "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode != 0 and "no world-model checkpoint" in r.stderr


def load_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("fit_scroll_head", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_drawn_windows_keep_the_real_context_and_draw_the_rest(tiny_checkpoint, real_episodes):
    import numpy as np
    from smbwm.data.segments import load_lowres_episodes
    from smbwm.models.sampler import load_sampler
    from smbwm.models.world_model import WorldModel

    fit = load_script()
    model, _ = WorldModel.load(tiny_checkpoint)
    c = model.context
    real = fit.real_windows(load_lowres_episodes(sorted(real_episodes.glob("*.hdf5")), real_episodes), c + 3, 5, seed=0)
    assert real["frames"].shape == (5, c + 3, 60, 64, 3) and real["scrolls"].shape == (5, c + 3)
    drawn = fit.draw_windows(model, real, c, load_sampler("game"), batch=2)
    assert np.array_equal(drawn["frames"][:, :c], real["frames"][:, :c])
    assert not np.array_equal(drawn["frames"][:, c:], real["frames"][:, c:])
    assert np.array_equal(drawn["actions"], real["actions"]) and np.array_equal(drawn["scrolls"], real["scrolls"])
    b = fit.context_batch(drawn, 16, c, np.random.default_rng(0))
    assert b["obs"].shape == (16, c, 60, 64, 3) and b["act"].shape == (16, c, 6) and b["past_scroll"].shape == (16, c - 1)


def test_fit_on_drawn_windows_reuses_them_from_the_cache(tiny_checkpoint, real_episodes, tmp_path):
    from smbwm.models.world_model import WorldModel

    args = ["--checkpoint", tiny_checkpoint, "--data", real_episodes, "--test-data", real_episodes, "--steps", 4,
            "--batch", 8, "--drawn-windows", 4, "--drawn-steps", 3, "--eval-windows", 3, "--cache", tmp_path / "cache"]
    r = fit_scroll_head(*args, "--out", tmp_path / "a", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "drawn frames" in r.stdout and "draw the dream's contexts" in r.stderr
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {"test_drawn.npz", "train_drawn.npz"}
    _, meta = WorldModel.load(tmp_path / "a")
    fit = meta["scroll_head_fit"]
    assert fit["drawn_windows"] == 4 and fit["drawn_share"] == 0.5
    assert set(fit["held_out_after"]) == {"real frames", "drawn frames"}
    again = fit_scroll_head(*args, "--out", tmp_path / "b", cwd=tmp_path)
    assert again.returncode == 0 and "draw the dream's contexts" not in again.stderr


def test_fit_scroll_head_rejects_a_bad_share(tiny_checkpoint, real_episodes, tmp_path):
    r = fit_scroll_head("--checkpoint", tiny_checkpoint, "--data", real_episodes, "--test-data", real_episodes,
                        "--out", tmp_path / "o", "--drawn-windows", 2, "--drawn-share", 1.5, cwd=tmp_path)
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "--drawn-share" in r.stderr
