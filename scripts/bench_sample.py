"""Play speed: the full dream pipeline (scroll head, denoiser, upsampler) at batch 1, per stage.

    python scripts/bench_sample.py [--checkpoint DIR] [--steps 30] [--runs 3] [--compile] [--no-openvino]

Runs WorldModelEnv (the same object the player uses) from a spawn with random actions and reports
frames/s and the median milliseconds of each stage, for several denoising steps of the default
sampler preset, on torch (fp32, bf16 autocast, optionally torch.compile) and on OpenVINO (the player's
default backend on a CPU).
"""
from __future__ import annotations

import argparse
import statistics
import time

# No OMP_WAIT_POLICY=PASSIVE (unlike training): at batch 1 sleeping OpenMP waits cost a lot per frame (docs/benchmarks.md),
# and the player runs with the default policy.

import numpy as np
import torch

from smbwm import actions as A
from smbwm.envs.world_model_env import WorldModelEnv


def run_once(env: WorldModelEnv, steps: int, seed: int) -> tuple[float, dict]:
    rng = np.random.default_rng(seed)
    env.reset(seed=seed, options={"spawn": 0})
    env.step(A.NOOP)                                              # warm-up
    times, t0 = [], time.perf_counter()
    for _ in range(steps):
        env.step(int(rng.choice(A.SIMPLE_MOVEMENT)))
        times.append(env.timings_ms)
    fps = steps / (time.perf_counter() - t0)
    return fps, {k: statistics.median(t[k] for t in times) for k in times[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--spawn-dir", default=None)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--denoising-steps", default="1,2,3,4")
    ap.add_argument("--compile", action="store_true", help="also fp32 with torch.compile (play.py --compile)")
    ap.add_argument("--no-openvino", dest="openvino", action="store_false", help="leave out the OpenVINO rows")
    a = ap.parse_args()
    print(f"threads {torch.get_num_threads()}, median of {a.runs} runs x {a.steps} steps, batch 1, 240x256 out")
    print("| backend, precision | denoising steps | frames/s | scroll+denoiser ms | upsampler ms | total ms |\n"
          "|---|---|---|---|---|---|")
    variants = [("torch", "fp32", False), ("torch", "bf16", False)] + ([("torch", "fp32", True)] if a.compile else []) \
        + ([("openvino", "auto", False)] if a.openvino else [])
    for backend, precision, compiled in variants:
        for n in [int(x) for x in a.denoising_steps.split(",")]:
            env = WorldModelEnv(checkpoint=a.checkpoint, spawn_dir=a.spawn_dir, denoising_steps=n, precision=precision,
                                compile=compiled, backend=backend)
            rows = [run_once(env, a.steps, s) for s in range(a.runs)]
            fps = statistics.median(r[0] for r in rows)
            ms = {k: statistics.median(r[1][k] for r in rows) for k in rows[0][1]}
            name = f"{backend}, {env.precision}" + (", compiled" if compiled else "")
            print(f"| {name} | {n} | {fps:.1f} | {ms['denoiser']:.1f} | {ms['upsampler']:.1f} | {ms['total']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
