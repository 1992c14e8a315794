"""The two ways to run the player: a window for a person, or headless with scripted actions.

Headless runs go through the very same loop, worker thread and renderer (SDL's dummy video driver),
so their `fps` is the player's full pipeline: env step, frame conversion, scaling and drawing.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from smbwm import actions as A
from smbwm.game.config import PlayConfig, PlayError
from smbwm.game.player import Player, RunLog
from smbwm.game.render import Renderer
from smbwm.game.session import Session
from smbwm.utils.device import cpu_has_bf16

RANDOM_ACTION_SET = "complex"


def read_action_file(path: str | Path) -> list[int]:
    """One NES button byte per line, decimal; blank lines and `#` comments are skipped."""
    out = []
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise PlayError(f"--actions {path}: not a text file of NES bytes ({type(e).__name__})") from None
    for n, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            byte = int(text)
        except ValueError:
            raise PlayError(f"--actions {path}, line {n}: {text[:40]!r} is not a decimal NES button byte (0..255)") from None
        if not 0 <= byte <= 255:
            raise PlayError(f"--actions {path}, line {n}: {byte} is outside 0..255")
        out.append(byte)
    if not out:
        raise PlayError(f"--actions {path}: no actions in the file (one decimal NES byte per line)")
    return out


def action_stream(cfg: PlayConfig) -> Iterator[int]:
    """The headless actions: the file's bytes (cycled), or held random choices over COMPLEX_MOVEMENT."""
    if cfg.actions != "random":
        seq = read_action_file(cfg.actions)
        i = 0
        while True:
            yield seq[i % len(seq)]
            i += 1
    from smbwm.agents.random_agent import RandomAgent
    agent = RandomAgent(action_set=RANDOM_ACTION_SET, seed=cfg.seed)
    while True:
        yield agent.act(None, {})


def open_renderer(sides: list[str], scale: int) -> Renderer:
    import pygame
    try:
        return Renderer(sides, scale)
    except pygame.error as e:
        raise PlayError(f"cannot open a window ({e}); set DISPLAY, or run with --headless --out DIR") from None


def run_window(cfg: PlayConfig) -> dict[str, Any]:
    note = " (compiling the model: ~1 min the first time)" if cfg.compile else \
        (" (OpenVINO converts the model the first time: ~15 s)" if cfg.backend != "torch" and cfg.mode != "real" else "")
    print(f"loading {cfg.mode}{note} ...", flush=True)
    session = Session(cfg)
    if session.dream is not None:
        import torch
        d = session.dream
        print(f"dream: {d.backend}, {d.precision}, {torch.get_num_threads()} threads"
              + ("; this CPU has no bf16 units (AVX-512 BF16 or AMX): expect a fraction of game speed"
                 if d.precision == "fp32" and d.device.type == "cpu" and not cpu_has_bf16() else ""), flush=True)
    try:
        renderer = open_renderer(session.sides, cfg.scale)
        try:
            log = Player(session, renderer, cfg.fps, sampler=cfg.sampler).run()
        finally:
            renderer.close()
    finally:
        session.close()
    stats = summarize(log, cfg, session)
    print(f"played {stats['steps']} steps at {stats['fps']:.1f} steps/s"
          + (f"; saved {len(stats['saved_episodes'])} episodes to {cfg.record}" if cfg.record else ""))
    _print_speed_note(stats, cfg)
    return stats


def run_headless(cfg: PlayConfig) -> dict[str, Any]:
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise PlayError(f"--out {cfg.out}: cannot create it ({e.strerror})") from None
    stream = action_stream(cfg)
    session = Session(cfg)
    try:
        renderer = open_renderer(session.sides, cfg.scale)
        try:
            log = Player(session, renderer, cfg.fps, sampler=cfg.sampler).run(
                actions=stream, max_steps=cfg.frames, log=RunLog(keep_frames=True))
            import pygame
            pygame.image.save(renderer.screen, str(out / "window.png"))
        finally:
            renderer.close()
    finally:
        session.close()
    main_side = "real" if cfg.mode == "real" else "dream"
    np.save(out / "frames.npy", np.stack(log.frames[main_side]))
    if cfg.mode == "compare":
        np.save(out / "real_frames.npy", np.stack(log.frames["real"]))
    write_gif(out / "frames.gif", [np.concatenate(row, axis=1) for row in zip(*(log.frames[s] for s in session.sides))], cfg.fps)
    stats = summarize(log, cfg, session)
    (out / "play_stats.json").write_text(json.dumps(stats, indent=1))
    print(f"{stats['steps']} steps at {stats['fps']:.2f} steps/s ({cfg.mode}); wrote {out}/frames.npy, frames.gif, "
          "play_stats.json" + (", real_frames.npy" if cfg.mode == "compare" else ""))
    _print_speed_note(stats, cfg)
    return stats


def speed_note(stats: dict[str, Any], fps: float, cores: int | None = None, has_bf16: bool | None = None) -> str | None:
    """One line on why the dream played below `fps`, or None when it kept up (within 20 %) or only the
    real game ran. Most CPUs without bf16 units (AVX2 only) compute the networks in fp32 and play the
    default sampler at a fraction of game speed: a player should know that is the machine, not a hang."""
    if stats.get("backend") is None or stats["fps"] >= 0.8 * fps:
        return None
    cores = cores or os.cpu_count() or 1
    has_bf16 = cpu_has_bf16() if has_bf16 is None else has_bf16
    threads = stats["torch_threads"]
    why = f"the networks ran in {stats['precision']} ({stats['backend']}, {threads} thread{'s' * (threads != 1)})"
    if stats["precision"] == "fp32" and stats["device"] == "cpu":
        why += ("; this CPU has bf16 units: --backend openvino runs them in bf16, several times faster" if has_bf16
                else "; this CPU has no bf16 units (AVX-512 BF16 or AMX), without which they run several times slower")
    load = stats["load_average"][0]
    if load > cores:
        why += f"; the machine is busy (load {load:.1f} on {cores} cores" + (": --threads 1 may help)" if threads > 1 else ")")
    return f"the dream ran at {stats['fps']:.1f} of {fps:g} steps/s: {why} (docs/benchmarks.md#player)"


def _print_speed_note(stats: dict[str, Any], cfg: PlayConfig) -> None:
    note = speed_note(stats, cfg.fps)
    if note:
        print(note)


def write_gif(path: Path | BinaryIO, frames: list[np.ndarray], fps: float) -> None:
    """An animated GIF of `frames` to a file path or a binary stream."""
    from PIL import Image
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(path, format="GIF", save_all=True, append_images=imgs[1:], duration=max(int(round(1000 / fps)), 20),
                 loop=0)


def summarize(log: RunLog, cfg: PlayConfig, session: Session) -> dict[str, Any]:
    wall = max(log.finished - log.started - log.reset_s, 1e-9)
    med = {k: round(float(np.median(v)), 2) for k, v in sorted(log.timings.items())}
    return {
        "fps": log.steps / wall,                      # steps shown per second of the loop, resets excluded
        "step_fps": 1000.0 / float(np.median(log.step_ms)) if log.step_ms else 0.0,   # 1 / median step time
        "steps": log.steps, "episodes_started": log.resets, "episode_ends": log.ends, "wall_s": round(wall, 3), "reset_s": round(log.reset_s, 3),
        "input_polls_per_s": round(log.ticks / max(log.finished - log.started, 1e-9), 1),
        "cpu_ms_per_step": round(1000 * log.cpu_s / max(log.steps, 1), 1),   # resets included
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "step_ms_median": round(float(np.median(log.step_ms)), 2) if log.step_ms else None,
        "timings_ms_median": med,
        "denoising_steps": session.denoising_steps,
        **{k: getattr(getattr(session.dream, "sampler", None), k, None)
           for k in ("mario_retries", "mario_rescue", "mario_rescue_steps", "tile_snap", "hud_snap", "display_snap",
                     "camera_follow", "prior_fill", "reuse_deep")},
        "backend": getattr(session.dream, "backend", None),     # what ran the networks (auto resolved)
        "precision": getattr(session.dream, "precision", None),
        "device": str(getattr(session.dream, "device", "cpu")),
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None,
        "actions": {A.name(b): int(c) for b, c in zip(*np.unique(np.array(log.actions, np.int64), return_counts=True))}
        if log.actions else {},
        "saved_episodes": [str(p) for p in session.saved_episodes()],
        "settings": cfg.settings(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
