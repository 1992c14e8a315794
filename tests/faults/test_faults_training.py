"""Fault probes of the world-model trainer (issue 19, points 1, 2 and 8): every bad value ends in one
`error:` line (exit 2) before anything is trained or deleted."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT


def main_py(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "src/main.py", "experiment=tiny", "wandb.mode=disabled", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)


def one_error_line(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1, r.stderr[-3000:]
    for w in words:
        assert w in err[0], err[0]
    return err[0]


def checkpoint_names(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").glob("step_*"))


def test_training_again_in_a_finished_run_dir_is_refused(tiny_run, real_episodes, tmp_path):
    """Point 1: without resume=true a second run there used to delete its own new checkpoints."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    before = checkpoint_names(copy)
    latest = (copy / "checkpoints/latest").read_text()
    r = main_py(f"data.dir={real_episodes}", "training.steps=2", "training.checkpoint_every=1",
                f"hydra.run.dir={copy}")
    one_error_line(r, "resume=true", "new dir")
    assert checkpoint_names(copy) == before and (copy / "checkpoints/latest").read_text() == latest


@pytest.mark.slow
def test_overwrite_true_starts_over_and_keeps_the_new_checkpoints(tiny_run, real_episodes, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    r = main_py(f"data.dir={real_episodes}", "training.steps=2", "training.checkpoint_every=1", "overwrite=true",
                f"hydra.run.dir={copy}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert checkpoint_names(copy) == ["step_0000001", "step_0000002"]
    assert (copy / "checkpoints/latest").read_text().strip() == "step_0000002"


@pytest.mark.parametrize("override, words", [
    ("training.keep=-1", ["training.keep"]),                 # point 2: used to delete every checkpoint
    ("training.keep=0", ["training.keep"]),
    ("training.lr=-1", ["training.lr"]),
    ("training.lr=nan", ["training.lr"]),
    ("training.lr=abc", ["training.lr"]),
    ("training.device=foo", ["training.device"]),
    ("training.threads=-1", ["training.threads"]),
    ("training.log_every=0", ["training.log_every"]),
    ("training.upsampler_every=0", ["training.upsampler_every"]),
    ("training.image_every=0", ["training.image_every"]),
    ("training.precision=fp8", ["training.precision"]),
    ("training.warmup=-10", ["training.warmup"]),
    ("training.grad_clip=-1", ["training.grad_clip"]),
    ("training.ema_decay=5", ["training.ema_decay"]),
])
def test_bad_training_values_stop_with_one_line(override, words, tmp_path):
    r = main_py("data.dir=/nonexistent", override, f"hydra.run.dir={tmp_path / 'run'}")
    one_error_line(r, *words)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("kind", ["empty", "wrong_size", "nan"])
def test_bad_init_from_checkpoint_is_one_line(kind, tiny_checkpoint, real_episodes, tmp_path):
    """init_from= an empty folder, a checkpoint of another size, or NaN weights (point 11)."""
    ck = tmp_path / "ck"
    if kind == "empty":
        ck.mkdir()
        extra = []
    elif kind == "wrong_size":
        shutil.copytree(tiny_checkpoint, ck)
        extra = ["model.denoiser.channels=[8,8,8,8]"]
    else:
        import torch
        from smbwm.utils.checkpoint import save_tensors
        from safetensors.torch import load_file
        shutil.copytree(tiny_checkpoint, ck)
        sd = load_file(str(ck / "denoiser.safetensors"))
        k = next(k for k, v in sd.items() if v.is_floating_point())
        sd[k] = torch.full_like(sd[k], float("nan"))
        save_tensors(ck / "denoiser.safetensors", sd)
        extra = []
    r = main_py(f"data.dir={real_episodes}", f"init_from={ck}", *extra, f"hydra.run.dir={tmp_path / 'run'}")
    one_error_line(r, str(ck))
