"""Fault probes of train_policy.py (issue 19, point 5): its resume state is never unpickled."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, compose


class _Payload:
    """Unpickling this object creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("name", ["state.pt", "state.safetensors"])
def test_a_malicious_state_file_does_not_execute(tmp_path, name):
    run_dir, marker = tmp_path / "run", tmp_path / "pwned"
    run_dir.mkdir()
    (run_dir / name).write_bytes(pickle.dumps({"spec": _Payload(marker)}))
    r = subprocess.run([sys.executable, "src/train_policy.py", "policy/schedule=smoke", "levels=[1-1]", "workers=1",
                        "nice=0", f"run_dir={run_dir}", f"output={tmp_path / 'mm.npz'}", "resume=true",
                        "wandb.mode=disabled"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert not marker.exists(), "unpickling ran the payload"
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    err = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and name in err[0], r.stderr[-3000:]


@pytest.mark.slow
def test_policy_state_round_trips_exactly(tmp_path):
    """The safetensors state holds what the pickle held: weights, Adam moments, elite episodes, counters."""
    from smbwm.agents.modular_mind import default_spec, init_params
    from smbwm.policy.model import ModularMind
    from smbwm.policy.state import load_state
    from train_policy import train
    over = ["policy/schedule=smoke", "levels=[1-1]", "workers=1", "nice=0", f"run_dir={tmp_path}/run",
            f"output={tmp_path}/mm.npz", "reward.max_steps=80", "wandb.mode=disabled"]
    st = train(compose("policy", over))
    spec = default_spec()
    model = ModularMind(spec, init_params(spec, seed=123))
    opt = torch.optim.Adam(model.parameters(), lr=1.0)
    back = load_state(tmp_path / "run/state.safetensors", spec, model, opt)
    assert back["iteration"] == st["iteration"] and back["history"] == st["history"] and back["best"] == st["best"]
    assert back["elite"].keys() == st["elite"].keys() and any(back["elite"].values())
    for level, trajs in st["elite"].items():
        for a, b in zip(trajs, back["elite"][level]):
            assert a.max_x == b.max_x and a.flag == b.flag and a.level == b.level
            assert all(np.array_equal(getattr(a, n), getattr(b, n)) for n in ("inputs", "actions", "rewards"))
    assert any(len(s) for s in opt.state_dict()["state"].values())          # Adam moments restored
