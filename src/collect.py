"""Collect episodes: an agent plays an environment; one HDF5 file per episode (format: docs/data.md).

    python src/collect.py env=nes agent=balanced episodes=20 max_steps=1000 level=1-1 workers=2

Re-running the same command resumes: existing episode files are kept. Ctrl-C keeps every finished
episode and saves the one in progress marked as truncated.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from smbwm import actions as A
from smbwm.collection.collector import EpisodeJob, WorkerResult, collect_worker
from smbwm.utils.config_errors import config_error


def _levels(cfg: DictConfig) -> list[str]:
    from smbwm.stages import expand_stages
    spec = cfg.level
    if OmegaConf.is_list(spec):
        spec = list(spec)
    if cfg.env.name == "nes":
        if isinstance(spec, list) and not spec:
            return []                         # level=[]: an error, not random stages
        return expand_stages(spec) or ["random"]
    if cfg.env.name == "levels":  # MarioGPT levels: files, generated from prompts, or corpus windows
        from smbwm.envs.level_sources import collect_levels
        return collect_levels(cfg)
    return [str(x) for x in (spec if isinstance(spec, list) else [spec])]


def _env_factory(env_cfg: dict[str, Any], max_steps: int):
    def make(level: str):
        from hydra.utils import instantiate
        import smbwm.envs  # noqa: F401 - registers ids
        kw = {k: v for k, v in env_cfg.items() if k not in ("name", "generate")}  # generate: collect-side only
        if env_cfg["name"] == "nes":
            kw.update(level=None, random_stages=True) if level == "random" else kw.update(level=level)
        else:
            kw["level"] = level
        return instantiate(kw, max_episode_steps=max_steps)
    return make


def _agent_factory(agent_cfg: dict[str, Any], seed: int):
    def make():
        from hydra.utils import instantiate
        return instantiate(agent_cfg, seed=seed)
    return make


def _jobs(levels: list[str], seed: int, worker: int, workers: int, episodes: int | None):
    i = worker
    while episodes is None or i < episodes:
        yield EpisodeJob(index=i, level=levels[i % len(levels)], seed=seed * 100_003 + i)
        i += workers


def command_line(overrides: list[str]) -> str:
    """The command that collects these episodes again, stored in each file (attr `collect_command`) so
    that a report on them can say how to remake them: the Hydra overrides, with out_dir as <dir> and
    secrets (API keys, as in _public) as <hidden>."""
    import shlex
    args = []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        args.append("out_dir=<dir>" if key == "out_dir" else f"{key}=<hidden>" if "key" in key.lower() and "=" in o
                    else shlex.quote(o))
    return " ".join(["python src/collect.py", *args])


def _public(agent_cfg: dict) -> dict:
    """The agent config as stored in every episode file: secrets (API keys) left out."""
    return {k: ("<hidden>" if "key" in k.lower() and v else v) for k, v in agent_cfg.items()}


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive the collector (kill -9 of the parent): orphans would keep writing
    while a re-run starts on the same episodes. Linux: the kernel kills us; elsewhere a watcher thread."""
    try:
        import ctypes
        if ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL) == 0:   # PR_SET_PDEATHSIG
            if os.getppid() != parent:                                       # died before prctl
                os._exit(1)
            return
    except (OSError, AttributeError):
        pass
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def _worker_main(w: int, cfg: dict, levels: list[str], source: str, progress, results, parent: int = 0) -> None:
    if parent:
        _die_with_parent(parent)
    episodes = None if cfg["total_steps"] else cfg["episodes"]
    budget = None if not cfg["total_steps"] else -(-cfg["total_steps"] // cfg["workers"])
    try:
        res = collect_worker(_env_factory(cfg["env"], cfg["max_steps"]), _agent_factory(cfg["agent"], cfg["seed"] + w),
                             _jobs(levels, cfg["seed"], w, cfg["workers"], episodes), cfg["out_dir"], source,
                             cfg["max_steps"], attrs=_attrs(cfg),
                             step_budget=budget, compression=cfg["compression"], on_step=progress.put if progress else None)
    except Exception as e:  # noqa: BLE001 - reported by the parent as one line
        msg = " ".join(str(e).split())           # Hydra wraps errors over several lines: keep one
        res = WorkerResult(errors=[f"worker {w}: {type(e).__name__}: {msg}"])
    if results is None:
        return res
    results.put(res)


def _attrs(cfg: dict) -> dict[str, Any]:
    attrs = {"agent_config": json.dumps(_public(cfg["agent"])), "env": cfg["env"]["name"]}
    if cfg.get("_command"):
        attrs["collect_command"] = cfg["_command"]
    return attrs


def _merge(results: list[WorkerResult]) -> WorkerResult:
    out = WorkerResult()
    for r in results:
        out.episodes += r.episodes; out.steps += r.steps; out.skipped += r.skipped
        out.skipped_steps += r.skipped_steps
        out.max_x += r.max_x; out.flags += r.flags; out.truncated_by_stop += r.truncated_by_stop
        out.actions.update(r.actions); out.errors += r.errors; out.write_failed += r.write_failed
        for k, v in r.agent_summary.items():
            if k != "actions":
                out.agent_summary.setdefault(k, []).append(v)
    return out


def _report(res: WorkerResult, seconds: float, source: str, out_dir: Path, seed: int) -> dict[str, Any]:
    total = sum(res.actions.values()) or 1
    written = res.steps - res.skipped_steps
    report = {
        "source": source, "episodes_written": res.episodes, "episodes_already_present": res.skipped,
        "steps": written, "steps_already_present": res.skipped_steps, "seconds": round(seconds, 1),
        "steps_per_s": round(written / max(seconds, 1e-9), 1),     # this run's steps only, not the files kept
        "mean_max_x": round(sum(res.max_x) / len(res.max_x), 1) if res.max_x else None,
        "flag_rate": round(res.flags / len(res.max_x), 3) if res.max_x else None,
        "stopped_early": res.truncated_by_stop,
        "actions": {A.name(b): round(c / total, 4) for b, c in sorted(res.actions.items())},
        "agent": res.agent_summary, "errors": res.errors, "write_failed": res.write_failed,
    }
    print(f"\n{source}: {res.episodes} episodes written ({res.skipped} already there), {written} steps, "
          f"{report['steps_per_s']} steps/s; mean max x_pos {report['mean_max_x']}, flag rate {report['flag_rate']}")
    print("action histogram: " + ", ".join(f"{k} {v:.1%}" for k, v in report["actions"].items()))
    summary = out_dir / f"summary_{source.replace('/', '-')}_s{seed}.json"
    tmp = summary.with_name(summary.name + ".tmp")
    try:
        tmp.write_text(json.dumps(report, indent=2, default=str))
        os.replace(tmp, summary)
    except OSError as e:                                   # disk full: say so, leave no half file
        tmp.unlink(missing_ok=True)
        report["write_failed"] += 1
        report["errors"].append(f"{summary}: cannot write the summary ({' '.join(str(e).split())})")
    return report


def collect(cfg: DictConfig, command: str | None = None) -> dict[str, Any]:
    """Run the collection `cfg` describes; `command` (command_line's) is stored in every episode file."""
    c = OmegaConf.to_container(cfg, resolve=True)
    _check(c)
    c["_command"] = command
    try:
        levels = _levels(cfg)
    except ValueError as e:
        config_error(str(e))
    if not levels:
        config_error(f"level={c['level']} names no level (e.g. level=1-1, level=[1-1,1-2], world1, all, random)")
    if c["env"]["name"] == "dream":
        _check_dream_levels(c, levels)
    agent_name = getattr(hydra.utils.get_class(c["agent"]["_target_"]), "name", "agent")
    source = f"{c['env']['name']}/{agent_name}"
    out_dir = Path(c["out_dir"])
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        config_error(f"out_dir={out_dir}: cannot create it ({e.strerror})")
    lock = _lock_out_dir(out_dir)          # held (inherited by the workers) until this function returns
    try:
        return _collect(c, levels, source, out_dir)
    finally:
        lock.close()


def _check(c: dict) -> None:
    def integer(name: str, low: int, allow_none: bool = False) -> None:
        v = c[name]
        if v is None and allow_none:
            return
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            config_error(f"{name} must be an integer >= {low}{' (or null)' if allow_none else ''}, got {v!r}")
    integer("total_steps", 1, allow_none=True)
    if c["total_steps"] is None:
        integer("episodes", 1)
    integer("max_steps", 1)
    integer("workers", 1)
    integer("seed", 0)
    from smbwm.data.episode import COMPRESSIONS
    if c["compression"] not in COMPRESSIONS:
        config_error(f"compression must be one of {', '.join(COMPRESSIONS)}, got {c['compression']!r}")


def _check_dream_levels(c: dict, levels: list[str]) -> None:
    """env=dream: the level tag of an episode is the level of the spawn it starts from, so a level
    without spawns cannot be collected (it would be tagged with a level it does not show)."""
    import json as _json
    from smbwm.data.spawn import list_spawns
    from smbwm.utils.paths import SPAWNS
    root = Path(c["env"].get("spawn_dir") or SPAWNS)
    have = set()
    for p in list_spawns(root):
        try:
            meta = _json.loads((p / "meta.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(meta, dict) and meta.get("level"):
            have.add(str(meta["level"]))
    missing = [lv for lv in levels if lv != "random" and lv not in have]
    if missing:
        config_error(f"env=dream: no spawn of level {', '.join(missing)} in {root} (spawns there: "
                     f"{', '.join(sorted(have)) or 'none'}); make some with python src/dataset.py spawn, or level=random")


def _lock_out_dir(out_dir: Path):
    """One collector per directory: a second one would overwrite the first's episodes in progress (its
    .tmp files). The lock dies with its holders (workers included), so a kill -9 leaves none behind."""
    import fcntl
    path = out_dir / ".collect.lock"
    try:
        f = open(path, "a+")
    except OSError as e:
        config_error(f"out_dir={out_dir}: cannot write there ({e.strerror})")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip() or "?"
        f.close()
        config_error(f"out_dir={out_dir}: another collector (pid {holder}) is writing there; wait for it to "
                     "finish or use another out_dir")
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def _collect(c: dict, levels: list[str], source: str, out_dir: Path) -> dict[str, Any]:
    expected = c["total_steps"] or None
    bar = tqdm(total=expected, unit="step", desc=f"collect {source}", dynamic_ncols=True, smoothing=0.05)
    t0 = time.time()
    workers = int(c["workers"])
    if workers == 1:
        results = [_worker_main(0, c, levels, source, _BarFeed(bar), None)]
    else:
        ctx = mp.get_context("fork")
        progress, result_q = ctx.Queue(), ctx.Queue()
        procs = [ctx.Process(target=_worker_main, args=(w, c, levels, source, progress, result_q, os.getpid()), daemon=True)
                 for w in range(workers)]
        for p in procs:
            p.start()

        signals = []

        def _on_signal(signum, frame):
            # The workers save their episode in progress and report; we keep waiting for them, however
            # long a busy machine takes. `kill PID` reaches only this process: pass SIGTERM on (Ctrl-C
            # reaches the whole process group already). A second signal stops waiting.
            signals.append(signum)
            if signum == signal.SIGTERM:
                for p in procs:
                    if p.is_alive():
                        os.kill(p.pid, signal.SIGTERM)
            if len(signals) > 1:
                raise KeyboardInterrupt
        old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        results = []
        try:
            while len(results) < workers:
                _drain(progress, bar)
                try:
                    results.append(result_q.get(timeout=0.2))
                except queue.Empty:
                    if not any(p.is_alive() for p in procs):
                        try:
                            results.append(result_q.get(timeout=2))      # reported just before exiting
                        except queue.Empty:
                            results.append(WorkerResult(errors=["a worker died without reporting"]))
        except KeyboardInterrupt:
            pass
        for sig, old in old_handlers.items():
            signal.signal(sig, old)
        for p in procs:
            p.join(timeout=5)
    bar.close()
    res = _merge(results)
    report = _report(res, time.time() - t0, source, out_dir, c["seed"]) if c["summary"] else {}
    if res.write_failed and not report:
        report = {"episodes_written": res.episodes, "errors": res.errors, "write_failed": res.write_failed}
    bad = list(dict.fromkeys(e for e in res.errors if e != "stopped by the user"))  # each worker may report the same
    if bad:
        print("error: " + "; ".join(bad), file=sys.stderr)
    return report


def _drain(progress, bar) -> None:
    """Read pending progress counts (a worker cannot exit while its queue's pipe is full)."""
    try:
        while True:
            bar.update(progress.get_nowait())
    except queue.Empty:
        pass


class _BarFeed:
    def __init__(self, bar):
        self.bar = bar

    def put(self, n):
        self.bar.update(n)


@hydra.main(config_path="../config", config_name="collect", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    report = collect(cfg, command_line(list(HydraConfig.get().overrides.task)))
    if report.get("write_failed") or (report.get("errors") and report["episodes_written"] == 0
                                      and set(report["errors"]) != {"stopped by the user"}):
        sys.exit(1)


if __name__ == "__main__":
    main()
