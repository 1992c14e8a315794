"""The player's settings (`python src/play.py --help`) as one typed config."""
from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from smbwm.utils.paths import DEFAULT_SAMPLER, sampler_presets

BACKENDS = ("auto", "torch", "openvino")   # models.openvino_runtime.BACKENDS, kept here so --help needs no torch


NO_CHECKPOINT_HINT = ("train one with `python src/main.py data.dir=<episodes dir> export=checkpoints` (docs/model.md) "
                      "or pass --checkpoint DIR, or play the real game with --real")


class PlayError(ValueError):
    """A user mistake (bad flag, file, checkpoint, spawn); str() is one line saying what to do."""


@dataclass
class PlayConfig:
    checkpoint: str | None = None      # None -> the shipped checkpoints/ dir
    spawn: str | None = None           # spawn folder, folder of spawns, index, or "random"
    scale: int | None = None           # window scale; None: 3, or 2 side by side (--compare)
    fps: float = 15.0                  # game steps per second (15 = real game speed at frame-skip 4)
    denoising_steps: int | None = None # denoiser calls per frame (None: the sampler preset's)
    sampler: str = DEFAULT_SAMPLER
    mario_retries: int | None = None   # redraws of a frame without one sharp Mario (None: the preset's)
    reuse_deep: int | None = None      # UNet levels run at every sampler step, the rest reused (None: the preset's, 0: all)
    tile_snap: int | None = None       # cells snapped onto the tile book within this many pixels (None: the preset's)
    hud_snap: int | None = None        # the HUD's cells alone snapped so (None: the preset's)
    display_snap: int | None = None    # the shown frame snapped so, the dream going on as drawn (None: the preset's)
    camera_follow: int | None = None   # a frame whose Mario the camera pushed back more than this many px redrawn (None: the preset's)
    end_episodes: bool = True          # the checkpoint's end model ends the dream where the game would (death, flag)
    lost_end_steps: int = 60           # the dream ends after this many frames in a row without Mario (0: never)
    compile: bool = False              # torch.compile the model (faster frames, slower start)
    backend: str = "auto"              # auto (OpenVINO on a CPU where installed) | torch | openvino
    device: str = "auto"
    threads: int | None = None         # torch threads; None: torch's default (all cores)
    record: str | None = None          # directory for human-source episodes
    real: bool = False                 # play the real emulator instead of the dream
    compare: bool = False              # real emulator beside the dream, same buttons
    level: str = "1-1"                 # level of the real emulator (--real, --compare without a spawn)
    headless: bool = False
    frames: int = 100                  # headless: number of game steps to run
    actions: str = "random"            # headless: FILE (one decimal byte per line) or "random"
    out: str | None = None             # headless: output directory
    seed: int = 0
    max_episode_steps: int | None = None

    @property
    def mode(self) -> str:
        return "compare" if self.compare else ("real" if self.real else "dream")

    def settings(self) -> dict[str, Any]:
        return {**asdict(self), "mode": self.mode}


def build_parser() -> argparse.ArgumentParser:
    d = PlayConfig()
    p = argparse.ArgumentParser(
        prog="python src/play.py",
        description="Play the Super Mario Bros world model (the dream) or the real game in a pygame window.",
        epilog="Keys: arrows/WASD move, Z/K/Space jump (A), X/J/Shift run (B), Enter reset, P pause, "
               ". step while paused, Tab/N next spawn, Esc quit.")
    p.add_argument("--checkpoint", help="checkpoint file or run/checkpoints dir (default: the shipped checkpoints/)")
    p.add_argument("--spawn", help="spawn folder, folder of spawns, index into the spawn list, or 'random'")
    p.add_argument("--scale", type=int, help="window scale (default 3; 2 with --compare)")
    p.add_argument("--fps", type=float, default=d.fps, help=f"game steps per second (default {d.fps:g})")
    p.add_argument("--denoising-steps", type=int, dest="denoising_steps",
                   help="denoiser calls per frame (default: the --sampler preset's)")
    p.add_argument("--sampler", choices=sampler_presets(), default=d.sampler,
                   help=f"sampler preset (config/sampler/): {d.sampler} (default: 4 stochastic Euler steps that draw "
                        "a sharp Mario), fast (1 step: his average, blurrier), sharp (2 steps), quality (3 Heun steps)")
    p.add_argument("--mario-retries", type=int, dest="mario_retries",
                   help="draw a frame that does not show exactly one sharp Mario again, up to this many times "
                        "(default: the --sampler preset's; 0 shows the raw samples)")
    p.add_argument("--reuse-deep", type=int, dest="reuse_deep",
                   help="after the first denoiser call of a frame, run only the UNet's top this many levels and "
                        "reuse the deeper ones (default: the --sampler preset's; 0: the whole UNet at every step)")
    p.add_argument("--tile-snap", type=int, dest="tile_snap",
                   help="snap each drawn 8x8 cell that differs from a tile of the real game in at most this many of "
                        "its 64 pixels onto that tile, e.g. 16 (default: the --sampler preset's, 0: frames as drawn)")
    p.add_argument("--hud-snap", type=int, dest="hud_snap",
                   help="the same snap for the HUD's cells alone (score, coins, world, time), e.g. 16 (default: the "
                        "--sampler preset's, 0: the HUD as drawn)")
    p.add_argument("--display-snap", type=int, dest="display_snap",
                   help="the same snap of the whole frame for the frame shown only: the dream goes on from the frame as "
                        "drawn, e.g. 16 (default: the --sampler preset's, 0: show the frames as drawn)")
    p.add_argument("--camera-follow", type=int, dest="camera_follow",
                   help="a frame whose Mario stands more than this many pixels left of the last frame's while the camera "
                        "scrolled right (the game's camera never pushes him back) is drawn again with the camera moved "
                        "by as much as he moved, e.g. 4 (default: the --sampler preset's, 0: off)")
    p.add_argument("--no-end", action="store_false", dest="end_episodes",
                   help="the dream never ends an episode (by default the checkpoint's end model ends it where the "
                        "game would: Mario touches an enemy, falls, or takes the flag; then play starts again)")
    p.add_argument("--lost-end-steps", type=int, default=d.lost_end_steps, dest="lost_end_steps",
                   help=f"end the episode once the dream has shown no Mario for this many frames in a row: it "
                        f"lost him (default {d.lost_end_steps} = 4 s; 0: never)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the world model: faster frames, about a minute to start the first time")
    p.add_argument("--backend", choices=BACKENDS, default=d.backend,
                   help="what runs the networks: openvino (faster on a CPU), torch (the reference), or auto "
                        "(default: openvino on a CPU where it is installed, else torch)")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda ... (default auto)")
    p.add_argument("--threads", type=int, help="torch CPU threads for generation (default: all cores; 1 on a busy machine)")
    p.add_argument("--record", metavar="DIR", help="save every episode played (source dream/human or nes/human)")
    p.add_argument("--real", action="store_true", help="play the real NES emulator (see --level)")
    p.add_argument("--compare", action="store_true", help="real emulator beside the dream, same buttons")
    p.add_argument("--level", default=d.level, help=f"emulator level for --real/--compare (default {d.level})")
    p.add_argument("--headless", action="store_true", help="no window: feed --actions for --frames steps, write --out")
    p.add_argument("--frames", type=int, default=d.frames, help=f"headless: game steps to run (default {d.frames})")
    p.add_argument("--actions", default=d.actions,
                   help="headless: FILE with one NES button byte per line (decimal; cycled if shorter "
                        "than --frames), or 'random'")
    p.add_argument("--out", metavar="DIR", help="headless: writes frames.npy, frames.gif, play_stats.json here")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for random actions / spawns")
    p.add_argument("--max-episode-steps", type=int, dest="max_episode_steps", help="truncate episodes after N steps")
    return p


def parse_args(argv: Sequence[str] | None = None) -> PlayConfig:
    ns = build_parser().parse_args(argv)
    cfg = PlayConfig(**vars(ns))
    validate(cfg)
    return cfg


def validate(cfg: PlayConfig) -> None:
    if cfg.real and cfg.compare:
        raise PlayError("--real and --compare exclude each other (--compare already shows the real game)")
    if cfg.scale is None:
        cfg.scale = 2 if cfg.compare else 3
    if cfg.scale < 1 or cfg.scale > 8:
        raise PlayError(f"--scale must be 1..8, got {cfg.scale}")
    if not math.isfinite(cfg.fps) or cfg.fps <= 0:
        raise PlayError(f"--fps must be a number > 0, got {cfg.fps:g}")
    if cfg.seed < 0:
        raise PlayError(f"--seed must be >= 0, got {cfg.seed}")
    if cfg.threads is not None and cfg.threads < 1:
        raise PlayError(f"--threads must be >= 1, got {cfg.threads}")
    if cfg.max_episode_steps is not None and cfg.max_episode_steps < 1:
        raise PlayError(f"--max-episode-steps must be >= 1, got {cfg.max_episode_steps}")
    if cfg.compile and cfg.backend == "openvino":
        raise PlayError("--compile is torch's compiler; with --backend openvino leave it out (or use --backend torch)")
    if cfg.denoising_steps is not None and cfg.denoising_steps < 1:
        raise PlayError(f"--denoising-steps must be >= 1, got {cfg.denoising_steps}")
    if cfg.reuse_deep is not None and cfg.reuse_deep < 0:
        raise PlayError(f"--reuse-deep must be >= 0 (0: the whole UNet at every step), got {cfg.reuse_deep}")
    if cfg.mario_retries is not None and cfg.mario_retries < 0:
        raise PlayError(f"--mario-retries must be >= 0, got {cfg.mario_retries}")
    for flag, v in (("--tile-snap", cfg.tile_snap), ("--hud-snap", cfg.hud_snap), ("--display-snap", cfg.display_snap)):
        if v is not None and not 0 <= v <= 64:
            raise PlayError(f"{flag} must be between 0 and 64 (pixels of an 8x8 cell), got {v}")
    if cfg.camera_follow is not None and cfg.camera_follow < 0:
        raise PlayError(f"--camera-follow must be >= 0 (pixels; 0: off), got {cfg.camera_follow}")
    if cfg.lost_end_steps < 0:
        raise PlayError(f"--lost-end-steps must be >= 0 (0: never), got {cfg.lost_end_steps}")
    if cfg.headless:
        if cfg.out is None:
            raise PlayError("--headless needs --out DIR (where frames.npy, frames.gif, play_stats.json go)")
        if cfg.frames < 1:
            raise PlayError(f"--frames must be >= 1, got {cfg.frames}")
        if cfg.actions != "random" and not Path(cfg.actions).is_file():
            raise PlayError(f"--actions {cfg.actions}: no such file (give a file with one NES byte per line, or 'random')")
    # Cheap path checks first: a typo should not wait for a model to load.
    if cfg.spawn not in (None, "random") and not str(cfg.spawn).isdigit() and not Path(cfg.spawn).exists():
        raise PlayError(f"--spawn {cfg.spawn}: no such folder; make spawns with `python src/dataset.py spawn` "
                        "or give a spawn folder, an index or 'random'")
    if cfg.checkpoint is not None and not Path(cfg.checkpoint).exists() and not cfg.real:
        raise PlayError(f"--checkpoint {cfg.checkpoint}: no such file or directory; {NO_CHECKPOINT_HINT}")
    from smbwm.stages import parse_stage
    try:
        parse_stage(cfg.level)
    except ValueError as e:
        raise PlayError(f"--level: {e}") from None
