"""The resumable state of train_policy.py: one safetensors file, tensors plus a JSON header.

    <run_dir>/state.safetensors   model.*, opt.*, elite.<level>.<i>.{inputs,actions,rewards} tensors;
                                  header: spec, the optimizer's non-tensor state, the run's counters and
                                  history, each elite trajectory's scalar fields

Nothing is unpickled on load (an old `state.pt` pickle is refused, never opened: loading a pickle
runs whatever code it names). One file written atomically: a kill leaves the old state or the new one.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from smbwm.policy.rollout import Trajectory
from smbwm.utils.checkpoint import (CheckpointError, load_meta, load_tensors, optimizer_from_files, optimizer_to_files,
                              save_tensors)

STATE_FILE = "state.safetensors"
LEGACY_FILE = "state.pt"
_ARRAYS = ("inputs", "actions", "rewards")


def _plain(v: Any) -> Any:
    """numpy scalars (a flag from the emulator) as the JSON header's plain values."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def save_state(path: Path, spec: dict, model: torch.nn.Module, opt: torch.optim.Optimizer, st: dict[str, Any]) -> None:
    """st: the run's counters; st["elite"] maps a level to its kept Trajectory list."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt_tensors, opt_rest = optimizer_to_files(opt)
    tensors.update({f"opt.{k}": v for k, v in opt_tensors.items()})
    elite: dict[str, list[dict]] = {}
    for li, (level, trajs) in enumerate(st["elite"].items()):
        rows = elite.setdefault(level, [])
        for i, t in enumerate(trajs):
            for name in _ARRAYS:
                tensors[f"elite.{li}.{i}.{name}"] = torch.from_numpy(np.ascontiguousarray(getattr(t, name)))
            rows.append({f.name: _plain(getattr(t, f.name)) for f in dataclasses.fields(t) if f.name not in _ARRAYS})
    rest = {k: v for k, v in st.items() if k != "elite"}
    save_tensors(path, tensors, meta={"spec": spec, "opt": opt_rest, "st": rest, "elite": elite})


def load_state(path: Path, spec: dict, model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore model and optimizer in place; returns st (elite as Trajectory lists). CheckpointError
    (one line) for a file that is not such a state or was trained with another net config."""
    meta = load_meta(path)
    if not isinstance(meta, dict) or not {"spec", "opt", "st", "elite"} <= set(meta):
        raise CheckpointError(f"{path}: not a train_policy state file")
    if meta["spec"] != spec:
        raise CheckpointError(f"{path} was trained with another net config; use a new run_dir or resume=false")
    tensors = load_tensors(path)
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer_from_files(opt, {k[4:]: v for k, v in tensors.items() if k.startswith("opt.")}, meta["opt"])
        elite = {level: [Trajectory(**row, **{n: tensors[f"elite.{li}.{i}.{n}"].numpy() for n in _ARRAYS})
                         for i, row in enumerate(rows)]
                 for li, (level, rows) in enumerate(meta["elite"].items())}
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: damaged train_policy state ({' '.join(str(e).split())[:200]})") from None
    return {**meta["st"], "elite": elite}
