"""Build the environments the player drives, turning every loading failure into one PlayError line.

The player never imports an environment class directly: `Session` receives these builders, so tests
and other tools can inject any Gymnasium env with our interface (240x256x3 frames, NES-byte actions).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from smbwm.data.spawn import Spawn, SpawnError, load_spawn
from smbwm.game.config import NO_CHECKPOINT_HINT, PlayConfig, PlayError

UNLIMITED = 2 ** 62
DreamBuilder = Callable[[PlayConfig], Any]
RealBuilder = Callable[[str], Any]

def make_dream(cfg: PlayConfig) -> Any:
    """WorldModelEnv for `cfg` (checkpoint, device, denoising steps, sampler)."""
    import torch
    from smbwm.envs import world_model_env as mod
    from smbwm.utils.device import pick_device
    # torch's default (all cores) is the faster choice on an idle machine; under heavy load an OpenMP
    # team as large as the core count can stall at every barrier, and --threads 1 is the remedy
    # (docs/benchmarks.md, Player).
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        pick_device(cfg.device)
    except (ValueError, RuntimeError) as e:
        raise PlayError(f"--device {cfg.device}: {one_line(e).replace('device=cpu', '--device cpu')}") from None
    try:
        # The session picks starts itself and truncates both sides of --compare at the same step,
        # so the env's own episode limit is out of the way.
        return mod.WorldModelEnv(checkpoint=cfg.checkpoint, device=cfg.device, denoising_steps=cfg.denoising_steps,
                                 sampler=cfg.sampler, max_episode_steps=UNLIMITED, compile=cfg.compile,
                                 backend=cfg.backend, mario_retries=cfg.mario_retries, reuse_deep=cfg.reuse_deep,
                                 tile_snap=cfg.tile_snap, hud_snap=cfg.hud_snap, display_snap=cfg.display_snap,
                                 camera_follow=cfg.camera_follow,
                                 end_episodes=cfg.end_episodes,
                                 lost_end_steps=cfg.lost_end_steps)
    except mod.CheckpointError as e:
        msg = one_line(e).replace("checkpoint=<folder>", "--checkpoint <folder>")
        raise PlayError(msg if "main.py" in msg else f"{msg}; {NO_CHECKPOINT_HINT}") from None
    except mod.OpenVINOUnavailable as e:
        raise PlayError(f"--backend openvino: {one_line(e)}; or play with --backend torch") from None
    except mod.SamplerError as e:
        raise PlayError(f"--reuse-deep: {one_line(e)}") from None
    except SpawnError as e:
        raise PlayError(f"{one_line(e)}; make spawns with `python src/dataset.py spawn` or pass --spawn DIR") from None
    except Exception as e:  # noqa: BLE001 - inductor needs a C++ compiler; anything it raises is one line
        if not cfg.compile:
            raise
        raise PlayError(f"--compile failed ({type(e).__name__}: {one_line(e)[:200]}); play without --compile") from None


def make_real_factory(cfg: PlayConfig) -> RealBuilder:
    def make_real(level: str) -> Any:
        from smbwm.envs.smb_env import SuperMarioBrosGym
        # No env time limit: a spawn's replay can be long; the session truncates episodes itself.
        return SuperMarioBrosGym(level=level, max_episode_steps=None)
    return make_real


def load_spawn_clean(path: str | Path) -> Spawn:
    try:
        return load_spawn(path)
    except SpawnError as e:
        raise PlayError(f"{one_line(e)}; make spawns with `python src/dataset.py spawn` or pick another with --spawn") from None


def one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
