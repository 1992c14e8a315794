"""Measured speed of the player's full pipeline (env step in the worker thread, frame conversion,
scaling, drawing), headless with SDL's dummy driver, as `python src/play.py --headless` runs it.

    python scripts/bench_play.py                       # default config, shipped checkpoint
    python scripts/bench_play.py --checkpoint runs/tiny/checkpoints --runs 3 --frames 60
    python scripts/bench_play.py --sampler sharp --modes dream --threads 1
    python scripts/bench_play.py --modes dream --backend torch,openvino   # one row per backend
    python scripts/bench_play.py --modes dream --mario-retries 0          # without the sampler's Mario check
    python scripts/bench_play.py --modes dream --reuse-deep 0,2           # one row per setting of the deep-feature reuse

Prints one table row per mode (median over runs) and writes the numbers to --json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

from smbwm.game.config import PlayError, parse_args  # noqa: E402
from smbwm.game.run import run_headless  # noqa: E402
from smbwm.utils.paths import REPO_ROOT  # noqa: E402

MODES = {"dream": [], "compare": ["--compare"], "real": ["--real"]}


def bench(mode: str, extra: list[str], runs: int, frames: int, backend: str = "auto") -> dict:
    rows = []
    for r in range(runs):
        with tempfile.TemporaryDirectory() as out:
            argv = [*MODES[mode], *extra, "--backend", backend, "--headless", "--frames", str(frames), "--actions", "random",
                    "--seed", str(r), "--out", out]
            rows.append(run_headless(parse_args(argv)))
    timings = {k: float(np.median([row["timings_ms_median"].get(k, np.nan) for row in rows]))
               for k in rows[0]["timings_ms_median"]}
    return {"mode": mode, "backend": rows[0]["backend"] or "-", "runs": runs, "frames": frames,
            "fps_median": float(np.median([row["fps"] for row in rows])),
            "fps_runs": [round(row["fps"], 2) for row in rows],
            "step_ms_median": float(np.median([row["step_ms_median"] for row in rows])),
            "input_polls_per_s": float(np.median([row["input_polls_per_s"] for row in rows])),
            "cpu_ms_per_step": float(np.median([row["cpu_ms_per_step"] for row in rows])),
            "load_average": [row["load_average"][0] for row in rows],
            "timings_ms_median": timings, "denoising_steps": rows[0]["denoising_steps"],
            "reuse_deep": rows[0].get("reuse_deep"),
            "settings": {k: v for k, v in rows[0]["settings"].items() if k not in ("out", "seed")}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="checkpoint dir/file (default: the shipped checkpoints/)")
    p.add_argument("--spawn", help="spawn folder or index (default: the player's default)")
    p.add_argument("--threads", help="torch threads (default: the player's, all cores)")
    p.add_argument("--sampler", help="the player's --sampler preset (default: the player's, game)")
    p.add_argument("--mario-retries", help="the player's --mario-retries (default: the preset's)")
    p.add_argument("--tile-snap", help="the player's --tile-snap (default: the preset's)")
    p.add_argument("--hud-snap", help="the player's --hud-snap (default: the preset's)")
    p.add_argument("--display-snap", help="the player's --display-snap (default: the preset's)")
    p.add_argument("--camera-follow", help="the player's --camera-follow (default: the preset's)")
    p.add_argument("--reuse-deep", help="the player's --reuse-deep, or a comma list (one row each; default: the preset's)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--modes", default="dream,compare,real", help="comma list of dream, compare, real")
    p.add_argument("--backend", default="auto",
                   help="the player's --backend: auto, torch, openvino, or a comma list (one row each)")
    p.add_argument("--json", default=str(REPO_ROOT / "runs" / "bench_play.json"))
    a = p.parse_args()
    extra = (["--checkpoint", a.checkpoint] if a.checkpoint else []) + (["--spawn", a.spawn] if a.spawn else []) \
        + (["--threads", a.threads] if a.threads else []) + (["--sampler", a.sampler] if a.sampler else []) \
        + (["--mario-retries", a.mario_retries] if a.mario_retries else []) \
        + (["--tile-snap", a.tile_snap] if a.tile_snap else []) + (["--hud-snap", a.hud_snap] if a.hud_snap else []) \
        + (["--display-snap", a.display_snap] if a.display_snap else []) \
        + (["--camera-follow", a.camera_follow] if a.camera_follow else [])
    results = []
    try:
        for mode in a.modes.split(","):
            for backend in (a.backend.split(",") if mode.strip() != "real" else ["auto"]):
                for reuse in (a.reuse_deep.split(",") if a.reuse_deep and mode.strip() != "real" else [None]):
                    more = ["--reuse-deep", reuse.strip()] if reuse else []
                    results.append(bench(mode.strip(), extra + more, a.runs, a.frames, backend.strip()))
    except PlayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"\nplayer pipeline, headless, {a.frames} steps x {a.runs} runs, torch threads {torch_threads()}, "
          f"checkpoint {a.checkpoint or 'checkpoints/ (shipped)'}")
    print(f"{'mode':8} {'backend':9} {'reuse':>5} {'fps (median)':>12} {'runs':>22} {'step ms':>8} {'CPU ms/step':>11} {'polls/s':>8} "
          f"{'denoise':>8} {'load 1m':>14}  env timings ms (median)")
    for r in results:
        t = ", ".join(f"{k} {v:.1f}" for k, v in r["timings_ms_median"].items())
        print(f"{r['mode']:8} {r['backend']:9} {str(r['reuse_deep'] if r['reuse_deep'] is not None else '-'):>5} {r['fps_median']:12.2f} {str(r['fps_runs']):>22} {r['step_ms_median']:8.1f} "
              f"{r['cpu_ms_per_step']:11.1f} {r['input_polls_per_s']:8.1f} {str(r['denoising_steps']):>8} "
              f"{str(r['load_average']):>14}  {t}")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({"checkpoint": a.checkpoint or "checkpoints/", "results": results}, indent=1))
    print(f"wrote {a.json}")
    return 0


def torch_threads() -> int | str:
    try:
        import torch
        return torch.get_num_threads()
    except ImportError:
        return "-"


if __name__ == "__main__":
    sys.exit(main())
