"""How far the Modular Mind gets, per level and explore tier, beside the scripted runner and random play.

    python scripts/bench_policy.py                                  # 1-1, 3-1, 5-1; 10 episodes each; ~10 min
    python scripts/bench_policy.py --levels 1-1 1-2 --episodes 20 --max-steps 1000 --json bench_policy.json

Every agent is built from its collect config (config/agent/<name>.yaml, as `collect.py agent=<name>`
plays it) and plays on the real emulator, episodes spread over `--workers` niced processes. Prints a
markdown table (mean and max of each episode's max x_pos, flag rate) and the training time recorded
in the checkpoint, and writes everything to --json.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from smbwm.utils.paths import CONFIG_DIR

# name -> (config/agent/<file>.yaml, overrides)
AGENTS = {
    "modular_mind expert (explore 0)": ("modular_mind", {"tier": "expert"}),
    "modular_mind normal (explore 0.1)": ("modular_mind", {"tier": "normal"}),
    "modular_mind erratic (explore 0.3)": ("modular_mind", {"tier": "erratic"}),
    "scripted runner (explore 0.05)": ("scripted", {}),
    "random": ("random", {}),
}
_ENVS: dict = {}


def _init(nice: int) -> None:
    try:
        os.nice(nice)
    except OSError:
        pass


def _episode(job: tuple[str, str, int, int, str]) -> tuple[str, str, int, bool, int]:
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    from smbwm.envs.smb_env import SuperMarioBrosGym
    name, level, seed, max_steps, weights = job
    file, over = AGENTS[name]
    cfg = OmegaConf.load(CONFIG_DIR / "agent" / f"{file}.yaml")
    if file == "modular_mind":
        over = {**over, "weights": weights}
    agent = instantiate(OmegaConf.merge(cfg, over), seed=seed)
    if level not in _ENVS:
        _ENVS[level] = SuperMarioBrosGym(level=level)
    env = _ENVS[level]
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    max_x, flag, steps = int(info["x_pos"]), False, 0
    for steps in range(1, max_steps + 1):
        obs, _, term, trunc, info = env.step(agent.act(obs, info))
        max_x, flag = max(max_x, int(info["x_pos"])), flag or bool(info.get("flag_get", False))
        if term or trunc:
            break
    return name, level, max_x, flag, steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", nargs="+", default=["1-1", "3-1", "5-1"])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--first-seed", type=int, default=1000, help="episode i uses seed first_seed + i (the policy's "
                    "sampling; the emulator itself is deterministic): pick checkpoints on other seeds than you report")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--nice", type=int, default=19)
    ap.add_argument("--weights", default="checkpoints/policy/modular_mind.npz")
    ap.add_argument("--agents", nargs="+", default=list(AGENTS), help="a subset of: " + "; ".join(AGENTS))
    ap.add_argument("--json", default="bench_policy.json")
    a = ap.parse_args(argv)
    from smbwm.agents.modular_mind import load_npz
    from smbwm.stages import parse_stage
    try:
        for lv in a.levels:
            parse_stage(lv)
        unknown = [n for n in a.agents if n not in AGENTS]
        if unknown:
            raise ValueError(f"unknown agent {unknown[0]!r}; choose from {list(AGENTS)}")
        _, _, meta = load_npz(a.weights)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    jobs = [(n, lv, a.first_seed + i, a.max_steps, a.weights) for lv in a.levels for n in a.agents for i in range(a.episodes)]
    t0 = time.time()
    with mp.get_context("fork").Pool(a.workers, initializer=_init, initargs=(a.nice,)) as pool:
        results = list(tqdm(pool.imap_unordered(_episode, jobs), total=len(jobs), desc="bench_policy", unit="ep"))
    rows = []
    for lv in a.levels:
        for n in a.agents:
            r = [x for x in results if x[0] == n and x[1] == lv]
            xs = np.array([x[2] for x in r])
            rows.append({"level": lv, "agent": n, "episodes": len(r), "mean_max_x": round(float(xs.mean()), 1),
                         "max_max_x": int(xs.max()), "flag_rate": round(float(np.mean([x[3] for x in r])), 2),
                         "mean_steps": round(float(np.mean([x[4] for x in r])), 1)})
    print("\n| level | agent | mean x_pos | max x_pos | flag rate |\n|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['level']} | {r['agent']} | {r['mean_max_x']:.0f} | {r['max_max_x']} | {r['flag_rate']:.2f} |")
    print(f"\n{len(jobs)} episodes (max_steps {a.max_steps}) in {time.time() - t0:.0f} s; the policy was trained "
          f"{meta.get('minutes', '?')} min on {meta.get('levels', '?')} (selected at iteration {meta.get('iteration', '?')}, "
          f"training-batch mean max x {meta.get('mean_max_x', 0):.0f})")
    Path(a.json).write_text(json.dumps({"rows": rows, "seconds": round(time.time() - t0, 1), "checkpoint_meta": meta,
                                        "max_steps": a.max_steps}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
