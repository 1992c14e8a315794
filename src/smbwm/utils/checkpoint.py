"""Checkpoint files: safetensors for every tensor, JSON for everything else, atomic writes.

Loading never unpickles: weights, optimizer moments and RNG states are plain tensors; the rest
(config, step, optimizer hyper-parameters, numpy RNG state) is JSON.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file


class CheckpointError(ValueError):
    """A missing or broken checkpoint; str() is one line that says what to do."""


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], dtype: torch.dtype | None = None,
                 meta: Any = None) -> None:
    """Atomic write; `meta` (JSON-able) goes into the file's header: one file that is all or nothing."""
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous()
    header = None if meta is None else {"json": json.dumps(meta)}
    _atomic(Path(path), lambda p: save_file(out, str(p), metadata=header))


def load_meta(path: str | os.PathLike) -> Any:
    """The JSON stored by save_tensors(..., meta=...) (None if there is none)."""
    p = Path(path)
    try:
        with safe_open(str(p), "pt") as f:
            header = f.metadata() or {}
        return json.loads(header["json"]) if "json" in header else None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p}: not a valid safetensors file ({str(e).splitlines()[0]})") from None


def load_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    try:
        tensors = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{p}: not a valid safetensors file ({str(e).splitlines()[0]})") from None
    for k, v in tensors.items():    # a diverged or damaged run: it would draw black frames, not fail
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(f"{p}: tensor {k!r} holds NaN or infinite values (a diverged or damaged "
                                  "checkpoint; use an earlier one)")
    return tensors


def save_json(path: str | os.PathLike, obj: Any) -> None:
    _atomic(Path(path), lambda p: Path(p).write_text(json.dumps(obj, indent=1)))


def load_json(path: str | os.PathLike) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{p}: missing") from None
    except (ValueError, OSError) as e:
        raise CheckpointError(f"{p}: unreadable JSON ({e})") from None


def optimizer_to_files(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (safetensors) and the JSON rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_files(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], rest: dict) -> None:
    state: dict[int, dict] = {}
    for key, v in list(tensors.items()) + list(rest["scalars"].items()):
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
