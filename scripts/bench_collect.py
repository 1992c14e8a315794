"""Benchmark data collection: env steps/s of the raw nes-py emulator, of our Gymnasium env, and of
`collect.py` writing HDF5 with 1 and 2 workers; file size per 1000 frames. Median of several runs.

    python scripts/bench_collect.py                       # ~2 minutes, prints a Markdown table
    python scripts/bench_collect.py --runs 5 --seconds 5 --collect-steps 1500

One env step is 4 NES frames (frame-skip 4) in every row; actions come from the random agent (uniform
over SIMPLE_MOVEMENT, held 1-6 steps), and the emulator resets whenever an episode ends. Beside wall-clock
steps/s the table gives steps per CPU-second (all processes involved), which does not depend on what
else runs on the machine: on a busy machine compare those.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

from smbwm.agents.random_agent import RandomAgent
from smbwm.data.episode import list_episodes, read_episode
from smbwm.envs.smb_env import SuperMarioBrosGym, _make_nes
from smbwm.utils.paths import CONFIG_DIR


@dataclass
class BenchConfig:
    level: str = "1-1"
    seconds: float = 4.0          # per timed emulator loop
    runs: int = 3                 # the median is reported
    collect_steps: int = 600      # total steps per collect.py run
    max_steps: int = 1000         # per episode in collect.py


class _Clock:
    """Wall time and CPU time of this process and its (joined) children."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), self._cpu()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, self._cpu() - self.cpu

    @staticmethod
    def _cpu() -> float:
        ch = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + ch.ru_utime + ch.ru_stime


def raw_emulator(cfg: BenchConfig) -> tuple[float, float]:
    """nes-py's SuperMarioBrosEnv alone: 4 frames per step, no copies, no info."""
    nes, agent = _make_nes(cfg.level), RandomAgent(seed=0)
    nes.reset()
    steps = 0
    with _Clock() as c:
        while time.perf_counter() - c.wall < cfg.seconds:
            a = agent.act(None, {})
            for _ in range(4):
                _, _, done, _ = nes.step(a)
                if done:
                    nes.reset()
                    break
            steps += 1
    nes.close()
    return steps / c.wall, steps / c.cpu


def our_env(cfg: BenchConfig) -> tuple[float, float]:
    """SuperMarioBrosGym: frame-skip 4, a copy of every frame, info with a copy of the RAM."""
    env, agent = SuperMarioBrosGym(cfg.level), RandomAgent(seed=0)
    obs, info = env.reset(seed=0)
    steps = 0
    with _Clock() as c:
        while time.perf_counter() - c.wall < cfg.seconds:
            obs, _, term, trunc, info = env.step(agent.act(obs, info))
            steps += 1
            if term or trunc:
                obs, info = env.reset()
    env.close()
    return steps / c.wall, steps / c.cpu


def collect_loop(cfg: BenchConfig) -> tuple[float, float]:
    """The collection loop alone (collection.collector.collect_worker: agent, env, HDF5 writer), with the
    emulator already started: the steady rate of one collect.py worker."""
    from smbwm.collection.collector import EpisodeJob, collect_worker
    env = SuperMarioBrosGym(cfg.level)
    env.reset()
    jobs = (EpisodeJob(index=i, level=cfg.level, seed=i) for i in range(10**6))
    with tempfile.TemporaryDirectory() as out, _Clock() as c:
        res = collect_worker(lambda level: env, lambda: RandomAgent(seed=0), jobs, out, "nes/random",
                             cfg.max_steps, attrs={}, step_budget=cfg.collect_steps)
    return res.steps / c.wall, res.steps / c.cpu


def collect_run(cfg: BenchConfig, workers: int, compression: str = "lzf") -> tuple[float, float, float]:
    """collect.py in process (as the CLI runs it, env start-up included): (steps/s, steps per CPU-second,
    MB per 1000 stored frames)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from collect import collect
    with tempfile.TemporaryDirectory() as out:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            c = compose("collect", ["agent=random", f"level={cfg.level}", f"total_steps={cfg.collect_steps}",
                                    f"max_steps={cfg.max_steps}", f"workers={workers}", f"out_dir={out}",
                                    f"compression={compression}", "seed=0"])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), _Clock() as clock:
            report = collect(c)
        files = list_episodes(out)
        frames = sum(len(read_episode(p, frames=False)) + 1 for p in files)
        size = sum(p.stat().st_size for p in files)
    return report["steps"] / clock.wall, report["steps"] / clock.cpu, size / frames * 1000 / 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--level", default=BenchConfig.level)
    ap.add_argument("--seconds", type=float, default=BenchConfig.seconds)
    ap.add_argument("--runs", type=int, default=BenchConfig.runs)
    ap.add_argument("--collect-steps", type=int, default=BenchConfig.collect_steps)
    a = ap.parse_args(argv)
    cfg = BenchConfig(level=a.level, seconds=a.seconds, runs=max(1, a.runs), collect_steps=a.collect_steps)
    rows = {"raw": "raw nes-py emulator (no copies)", "env": "our Gymnasium env (SuperMarioBrosGym)",
            "loop": "collection loop to HDF5 (1 worker, start-up excluded)",
            "c1": "collect.py to HDF5, 1 worker (start-up included)", "c2": "collect.py to HDF5, 2 workers"}
    wall: dict[str, list[float]] = {k: [] for k in rows}
    cpu: dict[str, list[float]] = {k: [] for k in rows}
    sizes: list[float] = []
    for r in range(cfg.runs):
        for k, fn in (("raw", raw_emulator), ("env", our_env), ("loop", collect_loop), ("c1", lambda c: collect_run(c, 1)),
                      ("c2", lambda c: collect_run(c, 2))):
            out = fn(cfg)
            wall[k].append(out[0]); cpu[k].append(out[1])
            if k == "c1":
                sizes.append(out[2])
        print(f"run {r + 1}/{cfg.runs}: " + ", ".join(f"{k} {wall[k][-1]:.0f}/s" for k in rows), file=sys.stderr)
    mb_gzip = collect_run(cfg, 1, "gzip")[2]
    w = {k: statistics.median(v) for k, v in wall.items()}
    c = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"\nlevel {cfg.level}, median of {cfg.runs} runs, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end; 1 step = 4 NES frames; collect.py: {cfg.collect_steps} steps a run\n")
    print("| what | steps/s (wall) | vs raw | steps per CPU-second | vs raw |")
    print("|---|---:|---:|---:|---:|")
    for k, label in rows.items():
        extra = f" ({w[k] / w['c1']:.2f}x 1 worker)" if k == "c2" else ""
        print(f"| {label} | {w[k]:.0f}{extra} | {w[k] / w['raw']:.0%} | {c[k]:.0f} | {c[k] / c['raw']:.0%} |")
    print(f"\nfile size per 1000 frames: {statistics.median(sizes):.1f} MB (lzf, default), "
          f"{mb_gzip:.1f} MB (gzip-1); the raw frames are {240 * 256 * 3 * 1000 / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
