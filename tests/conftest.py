"""Shared fixtures: real episodes from the real emulator, collected once per test session."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("SMBWM_CACHE", tempfile.mkdtemp(prefix="smbwm-test-cache-"))   # not the user's ~/.cache

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "config"


def compose(config_name: str, overrides: list[str]):
    """Compose a Hydra config of this repo, as the entry points see it."""
    from hydra import compose as _compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    if config_name == "trainer":
        import main  # noqa: F401 - registers the training/data dataclass defaults, as `python src/main.py` does
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return _compose(config_name=config_name, overrides=overrides)


def build_tile_book(args: list[str], cwd) -> subprocess.CompletedProcess:
    """scripts/build_tile_book.py as a user runs it, from another directory (it imports the installed package)."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "build_tile_book.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def run_collect(overrides: list[str]) -> dict:
    from collect import collect, command_line
    return collect(compose("collect", overrides), command_line(overrides))


@pytest.fixture(scope="session")
def real_episodes(tmp_path_factory) -> Path:
    """A small real dataset: 6 episodes on 1-1 and 1-2 from the scripted and balanced agents."""
    out = tmp_path_factory.mktemp("episodes")
    run_collect(["agent=scripted", "episodes=3", "max_steps=80", "level=[1-1,1-2]", f"out_dir={out}", "seed=1"])
    run_collect(["agent=balanced", "episodes=3", "max_steps=80", "level=1-1", f"out_dir={out}", "seed=2"])
    return out


@pytest.fixture(scope="session")
def tiny_run(real_episodes, tmp_path_factory) -> Path:
    """A Hydra run directory of `python src/main.py experiment=tiny` trained on the real episodes."""
    from main import run
    run_dir = tmp_path_factory.mktemp("tiny_run")
    run(compose("trainer", ["experiment=tiny", f"data.dir={real_episodes}", "wandb.mode=offline"]), run_dir)
    return run_dir


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    """The checkpoint folder (denoiser/upsampler safetensors + model.json) of the tiny run."""
    from smbwm.models.world_model import resolve_checkpoint
    return resolve_checkpoint(tiny_run)


@pytest.fixture(scope="session")
def tiny_spawns(real_episodes, tmp_path_factory) -> Path:
    """Spawn folders made from the real episodes (python src/dataset.py spawn)."""
    from dataset import main as dataset_main
    out = tmp_path_factory.mktemp("spawns")
    assert dataset_main(["spawn", str(real_episodes), str(out), "--count", "3"]) == 0
    return out


@pytest.fixture(scope="session")
def tiles_checkpoint(tiny_checkpoint, real_episodes, tmp_path_factory) -> Path:
    """The tiny checkpoint with a tile book (HUD table and clock) built from the real episodes."""
    out = tmp_path_factory.mktemp("tiles_ck")
    done = build_tile_book(["--data", str(real_episodes), "--heldout", str(real_episodes), "--checkpoint",
                            str(tiny_checkpoint), "--out", str(out), "--every", "4", "--min-count", "1",
                            "--hud-min-count", "1"], cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out
