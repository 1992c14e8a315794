"""Where things are in the repository, computed once: every module that needs the repository root,
the shipped checkpoints, the spawn points or the config folders imports them from here."""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
CONFIG_DIR = REPO_ROOT / "config"
SAMPLER_PRESETS = CONFIG_DIR / "sampler"              # <name>.yaml: the play/evaluation sampler presets
DEFAULT_SAMPLER = "game"                              # the preset play, the servers and evaluate use unless told
CHECKPOINTS = REPO_ROOT / "checkpoints"               # the shipped world model (and its model card)
POLICY_WEIGHTS = CHECKPOINTS / "policy" / "modular_mind.npz"
LEVEL_GEN_CHECKPOINT = CHECKPOINTS / "level_gen"
SPAWNS = REPO_ROOT / "spawn"                          # the shipped spawn points


def from_repo(path: str | Path) -> Path:
    """A path as given if it exists (absolute, or relative to the working directory), else the same
    path relative to the repository root (so `checkpoints/...` works from any directory)."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO_ROOT / p


def file_stamp(path: str | Path) -> dict:
    """Size and modification time of a file: what says a cached result made from it is still its own."""
    st = Path(path).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cache_dir() -> Path:
    """Where derived files are cached between runs (OpenVINO's converted models): $SMBWM_CACHE, else
    ~/.cache/smbwm. Anything in it can be deleted; it is rebuilt on demand."""
    return Path(os.environ.get("SMBWM_CACHE") or Path.home() / ".cache" / "smbwm")


def sampler_presets() -> tuple[str, ...]:
    """The sampler preset names a user may pick (config/sampler/*.yaml), the default first."""
    names = sorted(p.stem for p in SAMPLER_PRESETS.glob("*.yaml"))
    return tuple(sorted(names, key=lambda n: n != DEFAULT_SAMPLER))
