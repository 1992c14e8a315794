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
    from smbwm.models.world_model import WorldModel
    from dataset import main as dataset_main

    data = tmp_path / "data"
    shutil.copytree(real_episodes, data)
    assert dataset_main(["split", str(data), "--test-fraction", "0.4"]) == 0
    out = tmp_path / "fitted"
    r = fit_scroll_head("--checkpoint", tiny_checkpoint, "--data", data, "--out", out, "--steps", 6, "--batch", 8,
                        cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "held out after" in r.stdout and "open_loop" in r.stdout
    before, _ = WorldModel.load(tiny_checkpoint)
    after, meta = WorldModel.load(out)
    assert meta["scroll_head_fit"]["steps"] == 6 and meta["step"] > 0
    sb, sa = before.state_dict(), after.state_dict()
    head = [k for k in sb if k.startswith("denoiser.scroll_head.")]
    assert head and any(not torch.equal(sb[k], sa[k]) for k in head)
    assert all(torch.equal(sb[k], sa[k]) for k in sb if k not in head)


def test_fit_scroll_head_rejects_a_folder_without_checkpoint(real_episodes, tmp_path):
    r = fit_scroll_head("--checkpoint", tmp_path, "--data", real_episodes, "--out", tmp_path / "o", cwd=tmp_path)
    assert r.returncode != 0 and "no world-model checkpoint" in r.stderr
