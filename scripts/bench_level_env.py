"""Benchmark the MarioGPT level simulator and its A* expert.

    python scripts/bench_level_env.py                         # speed + expert on 10 corpus levels
    python scripts/bench_level_env.py --corpus 20 --generated 50 --json out.json

Prints a table: env steps/s (frame-skip 4, rendered frames) and physics frames/s (what the
planner pays), each the median of --runs runs, beside the real emulator; then the expert's
completion rate on corpus windows and on levels the shipped generator makes from varied prompts.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


import numpy as np
from tqdm import tqdm

from smbwm.envs.level_env import LevelEnv
from smbwm.envs.level_physics import step_frame

BUTTONS = [0x80, 0x82, 0x83, 0x81, 0x00, 0x40, 0x01]


def env_steps_per_s(make, steps: int, seed: int) -> float:
    env = make()
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(int(rng.choice(BUTTONS)))
        if term or trunc:
            env.reset(seed=seed)
    dt = time.perf_counter() - t0
    env.close()
    return steps / dt


def physics_frames_per_s(frames: int, seed: int) -> float:
    env = LevelEnv()
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    s = env.clone_state()
    t0 = time.perf_counter()
    for _ in range(frames):
        step_frame(s, int(rng.choice(BUTTONS)))
        if s.over:
            s = env.clone_state()
    return frames / (time.perf_counter() - t0)


def expert_run(env: LevelEnv, seed: int, max_steps: int, stall: int) -> dict:
    from smbwm.agents.expert import ExpertAgent
    agent = ExpertAgent(seed=seed)
    agent.bind(env)
    obs, info = env.reset(seed=seed)
    agent.reset(seed)
    t0 = time.perf_counter()
    steps, best_x, best_at = 0, info["x_pos"], 0
    for steps in range(1, max_steps + 1):
        obs, _, term, trunc, info = env.step(agent.act(obs, info))
        if term or trunc:
            break
        if info["x_pos"] > best_x:
            best_x, best_at = info["x_pos"], steps
        elif steps - best_at >= stall:       # no progress for `stall` steps: stuck (counted as failed)
            break
    return {"level": info["level"], "flag": bool(info["flag_get"]), "death": info["death"], "x": info["x_pos"],
            "width_px": env.state.width * 16, "steps": steps, "seconds": round(time.perf_counter() - t0, 1),
            **{k: v for k, v in agent.summary().items() if k != "actions"}}


def completion(runs: list[dict]) -> str:
    if not runs:
        return "-"
    done = sum(r["flag"] for r in runs)
    return f"{done}/{len(runs)} = {done / len(runs):.0%}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5, help="speed runs (the median is reported)")
    p.add_argument("--steps", type=int, default=400, help="env steps per speed run")
    p.add_argument("--corpus", type=int, default=10, help="corpus windows for the expert (0: skip)")
    p.add_argument("--generated", type=int, default=0, help="generated levels for the expert (0: skip)")
    p.add_argument("--width", type=int, default=100, help="columns of corpus windows / generated levels")
    p.add_argument("--max-steps", type=int, default=1500, help="expert step limit per level")
    p.add_argument("--stall", type=int, default=150, help="give a level up after this many steps without progress")
    p.add_argument("--level-dir", default=None, help="keep generated levels here (re-runs reuse them)")
    p.add_argument("--no-emulator", action="store_true", help="skip the real emulator's speed")
    p.add_argument("--json", default=None, help="also write the results here")
    a = p.parse_args()
    res: dict = {}
    res["level_env_steps_per_s"] = statistics.median(
        env_steps_per_s(lambda: LevelEnv(corpus_width=a.width), a.steps, i) for i in range(a.runs))
    res["physics_frames_per_s"] = statistics.median(physics_frames_per_s(a.steps * 4, i) for i in range(a.runs))
    if not a.no_emulator:
        import gymnasium
        import smbwm.envs  # noqa: F401
        res["emulator_steps_per_s"] = statistics.median(
            env_steps_per_s(lambda: gymnasium.make("smbwm/SuperMarioBros-1-1-v0"), a.steps, i) for i in range(a.runs))
    corpus_runs = []
    for i in tqdm(range(a.corpus), desc="expert on corpus levels"):
        corpus_runs.append(expert_run(LevelEnv(corpus_width=a.width), 1000 + i, a.max_steps, a.stall))
    gen_runs, gen_note = [], ""
    if a.generated:
        from smbwm.envs.level_sources import generate_levels, varied_prompts
        level_dir = Path(a.level_dir) if a.level_dir else Path(tempfile.mkdtemp(prefix="bench_levels_"))
        reused = (level_dir / "generated_s0.json").exists()
        try:
            t0 = time.perf_counter()
            ids = generate_levels(varied_prompts(a.generated, 0), level_dir, {"columns": a.width}, seed=0)
            if not reused:
                res["levels_generated_per_min"] = round(60 * len(ids) / (time.perf_counter() - t0), 1)
            for lid in tqdm(ids, desc="expert on generated levels"):
                gen_runs.append(expert_run(LevelEnv(level=lid, level_dir=str(level_dir)), 0, a.max_steps, a.stall))
        except ValueError as e:
            gen_note = f"skipped: {e}"
    res["expert_corpus"], res["expert_generated"] = corpus_runs, gen_runs
    print("\n| measure | value |\n|---|---|")
    print(f"| LevelEnv steps/s (frame-skip 4, rendered, median of {a.runs}) | {res['level_env_steps_per_s']:.0f} |")
    print(f"| physics frames/s without rendering (planner) | {res['physics_frames_per_s']:.0f} |")
    if "emulator_steps_per_s" in res:
        print(f"| real emulator steps/s (same loop) | {res['emulator_steps_per_s']:.0f} |")
    print(f"| expert completion, corpus windows of {a.width} columns | {completion(corpus_runs)} |")
    if "levels_generated_per_min" in res:
        print(f"| levels generated per minute ({a.width} columns, batches of 8) | {res['levels_generated_per_min']} |")
    if a.generated:
        print(f"| expert completion, generated levels of {a.width} columns | {completion(gen_runs) if gen_runs else gen_note} |")
    for name, runs in (("corpus", corpus_runs), ("generated", gen_runs)):
        if runs:
            sec = statistics.median(r["seconds"] for r in runs)
            fails = [f"{r['level']} ({r['death'] or 'stuck'} at x={r['x']})" for r in runs if not r["flag"]]
            print(f"{name}: median {sec} s per level; not finished: {', '.join(fails) or 'none'}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
