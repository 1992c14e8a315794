"""Run an agent in an environment and stream episodes to HDF5 (the worker loop of collect.py)."""
from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from smbwm.agents.base import AgentStopped
from smbwm.data.episode import EpisodeWriteError, EpisodeWriter, episode_length


@dataclass
class EpisodeJob:
    index: int
    level: str
    seed: int


@dataclass
class WorkerResult:
    episodes: int = 0
    steps: int = 0
    skipped: int = 0
    skipped_steps: int = 0                 # steps of the episode files already there (counted in steps)
    max_x: list[int] = field(default_factory=list)
    flags: int = 0
    truncated_by_stop: int = 0
    actions: Counter = field(default_factory=Counter)
    agent_summary: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    write_failed: int = 0                  # episodes dropped because the disk refused them


def episode_filename(source: str, job: EpisodeJob) -> str:
    safe = source.replace("/", "-")
    level = job.level.replace("/", "_").replace(":", "-") or "random"
    return f"{safe}_{level}_s{job.seed}_e{job.index:06d}.hdf5"


class _StopRequest:
    """Ctrl-C / SIGTERM only set a flag that the step loop reads: an exception raised by a signal can
    land anywhere (inside h5py, or in a garbage-collector callback that swallows it). A second signal
    interrupts at once (the episode in progress is then dropped, never left looking whole)."""

    requested = False

    @classmethod
    def handler(cls, signum, frame):
        if cls.requested:
            raise KeyboardInterrupt
        cls.requested = True


def _install_stop_handlers() -> dict:
    _StopRequest.requested = False
    if threading.current_thread() is not threading.main_thread():
        return {}                                  # signals reach only the main thread
    return {s: signal.signal(s, _StopRequest.handler) for s in (signal.SIGINT, signal.SIGTERM)}


def run_episode(env, agent, writer: EpisodeWriter, job: EpisodeJob, max_steps: int,
                on_step: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Play one episode into `writer` (which the caller closes). Returns max_x, flag, steps and
    `stopped` (the reason when the agent raised AgentStopped, else None)."""
    obs, info = env.reset(seed=job.seed)
    agent.reset(seed=job.seed)
    writer.reset(obs, info)
    max_x, flag, pending, stopped = int(info.get("x_pos", 0)), False, 0, None
    for t in range(max_steps):
        try:
            action = agent.act(obs, info)
        except AgentStopped as e:
            stopped = str(e) or type(e).__name__
            break
        obs, reward, terminated, truncated, info = env.step(action)
        truncated = truncated or (t == max_steps - 1 and not terminated)
        writer.step(action, reward, terminated, truncated, obs, info, text=agent.last_text)
        max_x = max(max_x, int(info.get("x_pos", 0)))
        flag = flag or bool(info.get("flag_get", False))
        pending += 1
        if on_step and pending >= 16:
            on_step(pending)
            pending = 0
        if terminated or truncated:
            break
        if _StopRequest.requested:
            stopped = "stopped by the user"
            break
    if on_step and pending:
        on_step(pending)
    return {"max_x": max_x, "flag": flag, "steps": len(writer), "stopped": stopped}


def collect_worker(make_env: Callable[[str], Any], make_agent: Callable[[], Any], jobs, out_dir: str | Path,
                   source: str, max_steps: int, attrs: dict[str, Any], step_budget: int | None = None,
                   compression: str = "lzf", on_step: Callable[[int], None] | None = None) -> WorkerResult:
    """Collect `jobs` (an iterable of EpisodeJob) until done or `step_budget` steps are written.
    Existing episode files are kept and counted (re-running a command resumes it)."""
    out_dir = Path(out_dir)
    res = WorkerResult()
    envs: dict[str, Any] = {}
    agent = make_agent()
    old_handlers = _install_stop_handlers()
    try:
        for job in jobs:
            if step_budget is not None and res.steps >= step_budget or _StopRequest.requested:
                break
            path = out_dir / episode_filename(source, job)
            if path.exists():
                n = episode_length(path)
                res.skipped += 1
                res.skipped_steps += n
                res.steps += n
                if on_step:
                    on_step(n)
                continue
            if job.level not in envs:
                envs[job.level] = make_env(job.level)
                agent.bind(envs[job.level])
            env = envs[job.level]
            meta = {**attrs, "source": source, "level": job.level, "seed": job.seed, "episode_index": job.index,
                    "max_steps": max_steps}
            try:
                writer = EpisodeWriter(path, meta, compression=compression)
                try:
                    out = run_episode(env, agent, writer, job, max_steps, on_step)
                except BaseException:
                    writer.abort()
                    raise
                extra = agent.episode_attrs() if hasattr(agent, "episode_attrs") else {}
                if hasattr(env, "episode_attrs"):  # env-side facts, e.g. LevelEnv: the level actually played
                    extra = {**env.episode_attrs(), **extra}
                if getattr(env, "level_text", None):
                    writer.level_text = env.level_text
                for k, v in extra.items():
                    writer.set_attr(k, v if isinstance(v, (int, float, str, bool)) else json.dumps(v))
                if out["stopped"]:
                    writer.set_attr("stopped_reason", out["stopped"])
                committed = writer.close(mark_truncated=bool(out["stopped"]))
            except EpisodeWriteError as e:      # disk full: the episode in flight is dropped, the rest kept
                res.errors.append(str(e))
                res.write_failed += 1
                break
            if committed is not None:  # None: stopped before a step
                res.episodes += 1
                res.steps += out["steps"]
                if _StopRequest.requested:   # the user's stop: kept, flagged, not a finished episode
                    res.truncated_by_stop += 1
                else:
                    res.max_x.append(out["max_x"])
                    res.flags += int(out["flag"])
            if out["stopped"]:  # the user stopped us, or the agent cannot go on (its server is down)
                res.errors.append(out["stopped"] if _StopRequest.requested else f"agent stopped: {out['stopped']}")
                break
    except KeyboardInterrupt:
        res.errors.append("stopped by the user")
    finally:
        for sig, old in old_handlers.items():
            signal.signal(sig, old)
        res.actions.update(agent.counts)
        res.agent_summary = agent.summary()
        agent.close()
        for env in envs.values():
            env.close()
    return res
