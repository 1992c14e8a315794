"""kill -9 of a real tiny training at a random point, then the usual re-run with resume=true (issue 19):
no process outlives the trainer, every checkpoint `latest` names loads, and the resumed run ends
bit for bit where an uninterrupted one ends."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from fault_tools import children, kill_tree, wait_gone

from smbwm.utils.checkpoint import load_tensors


STEPS = 24       # long enough that a kill at a random point after the first checkpoint lands before the end


def train(run_dir: Path, data: Path, *extra: str) -> subprocess.Popen:
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir.parent / f"{run_dir.name}_{time.monotonic_ns()}.log", "w")
    # its own W&B service, as from a shell: an in-process run of the test session exports WANDB_SERVICE,
    # and a killed child's run would stay registered ("run ID is in use") in that shared service
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen([sys.executable, "src/main.py", "experiment=tiny", f"data.dir={data}", "wandb.mode=offline",
                             f"training.steps={STEPS}", "training.checkpoint_every=3", "training.keep=20",
                             f"hydra.run.dir={run_dir}", *extra],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    proc.log = Path(log.name)
    return proc


def finished(proc: subprocess.Popen) -> str:
    """'' when the run ended well; else the test fails showing the end of the run's output."""
    if proc.wait(timeout=900) != 0:
        pytest.fail(f"exit {proc.returncode}:\n" + proc.log.read_text()[-4000:], pytrace=False)
    return ""


def final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    ck = run_dir / "checkpoints"
    name = (ck / "latest").read_text().strip()
    assert name == f"step_{STEPS:07d}"
    out = {}
    for f in ("train_state/model.safetensors", "train_state/opt_den.safetensors", "denoiser.safetensors",
              "upsampler.safetensors"):
        out.update({f"{f}:{k}": v for k, v in load_tensors(ck / name / f).items()})
    return out


@pytest.mark.slow
def test_kill_9_of_training_then_resume_equals_an_uninterrupted_run(real_episodes, tmp_path):
    from smbwm.models.world_model import WorldModel
    whole = train(tmp_path / "whole", real_episodes)
    assert finished(whole) == ""
    rng = random.Random(19)
    run = tmp_path / "killed"
    kills = 0
    for round_ in range(2):                              # killed twice at random points, resumed each time
        proc = train(run, real_episodes, *(["resume=true"] if round_ else []))
        try:
            end = time.monotonic() + 600
            while time.monotonic() < end and proc.poll() is None and not (run / "checkpoints/latest").exists():
                time.sleep(0.05)
            time.sleep(rng.uniform(0, 1.5))
            if proc.poll() is not None:
                break                                    # finished before the kill: nothing left to test
            kids = children(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
            assert wait_gone(kids, 60) == [], "a child process outlived the trainer"
        finally:
            kill_tree(proc)
        ck = run / "checkpoints"
        WorldModel.load(ck / (ck / "latest").read_text().strip())       # what latest names loads
    assert kills >= 1
    resumed = train(run, real_episodes, "resume=true")
    assert finished(resumed) == ""
    a, b = final_state(tmp_path / "whole"), final_state(run)
    assert a.keys() == b.keys()
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


def test_a_run_killed_while_writing_its_logs_resumes(tiny_run, real_episodes, tmp_path):
    """What a kill -9 can leave half written outside the checkpoints: an empty wandb_id.txt (used to
    stop every resume: "Run ID cannot be empty") and a half metrics line."""
    import json
    import shutil
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "wandb_id.txt").write_text("")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 13, "loss_den')
    proc = train(run, real_episodes, "resume=true", "training.steps=13", "training.checkpoint_every=6")
    assert finished(proc) == ""
    assert (run / "wandb_id.txt").read_text().strip()
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["step"] == 13
