"""Benchmark: levels generated per minute by the shipped generator (median of runs), and optionally
the expert's completion rate on generated levels.

    nice -n 19 python scripts/bench_level_gen.py                       # speed table
    nice -n 19 python scripts/bench_level_gen.py --complete 50          # + expert completion over 50 levels

Speed: batches of --batch levels of --columns columns, KV-cached sampling, temperature 0.8 / top-k 8.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


from smbwm.levels.generate import DEFAULT_CHECKPOINT, LevelGenerator, SampleConfig
from smbwm.levels.prompts import KEYWORDS, ORDER, Prompt


def varied_prompts(n: int, seed: int) -> list[Prompt]:
    import random
    rng = random.Random(seed)
    return [Prompt(*(rng.choice(list(dict.fromkeys(KEYWORDS[k]))) for k in ORDER)) for _ in range(n)]


def bench_speed(gen: LevelGenerator, columns: int, batch: int, runs: int) -> dict:
    rates, cpu_rates = [], []
    for r in range(runs):
        t, c = time.perf_counter(), time.process_time()
        gen.generate(varied_prompts(batch, r), SampleConfig(columns=columns), seed=r)
        rates.append(batch / (time.perf_counter() - t) * 60)
        cpu_rates.append(batch / max(1e-9, time.process_time() - c) * 60)
    # per CPU-minute too: on a shared machine wall time mostly measures the other jobs
    return {"columns": columns, "batch": batch, "runs": runs, "levels_per_min": round(statistics.median(rates), 1),
            "min": round(min(rates), 1), "max": round(max(rates), 1),
            "levels_per_cpu_min": round(statistics.median(cpu_rates), 1)}


def bench_expert(gen: LevelGenerator, n: int, columns: int, seed: int, out: Path | None) -> dict:
    from smbwm.agents.playtest import play_level  # the A* expert in LevelEnv
    prompts = varied_prompts(n, 1000 + seed)
    levels = []
    for i in range(0, n, 10):
        levels += gen.generate(prompts[i:i + 10], SampleConfig(columns=columns), seed=seed + i)
    results = []
    from tqdm import tqdm
    for i, (p, lvl) in enumerate(tqdm(list(zip(prompts, levels)), desc="expert", unit="level")):
        res = play_level(lvl, seed=seed + i)
        results.append({"prompt": str(p), **res})
        if out:
            out.mkdir(parents=True, exist_ok=True)
            lvl.save(out / f"level_{i:03d}.txt")
    done = sum(r["completed"] for r in results)
    return {"levels": n, "columns": columns, "completed": done, "rate": round(done / n, 3), "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    ap.add_argument("--columns", type=int, nargs="+", default=[50, 100])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--complete", type=int, default=0, help="also play N generated levels with the expert")
    ap.add_argument("--complete-columns", type=int, default=100)
    ap.add_argument("--save-levels", default=None, help="folder for the levels the expert played")
    ap.add_argument("--json", default=None, help="write all results to this JSON file")
    a = ap.parse_args()
    gen = LevelGenerator.load(a.checkpoint)
    rows = [bench_speed(gen, c, b, a.runs) for c in a.columns for b in a.batch]
    print(f"{'columns':>8} {'batch':>6} {'levels/min (median)':>20} {'min':>7} {'max':>7} {'levels/CPU-min':>15}")
    for r in rows:
        print(f"{r['columns']:>8} {r['batch']:>6} {r['levels_per_min']:>20} {r['min']:>7} {r['max']:>7} "
              f"{r['levels_per_cpu_min']:>15}")
    report = {"speed": rows}
    if a.complete:
        res = bench_expert(gen, a.complete, a.complete_columns, 0, Path(a.save_levels) if a.save_levels else None)
        print(f"expert completed {res['completed']}/{res['levels']} generated levels "
              f"({100 * res['rate']:.0f}%, {res['columns']} columns each)")
        report["expert"] = res
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
