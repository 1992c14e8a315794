"""python src/collect.py on the real emulator: overrides, round trip, resume, clear errors, and killing
it mid-episode (SIGINT / SIGTERM to a real subprocess) leaves only whole episode files."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smbwm.agents.base import AgentStopped
from smbwm.agents.random_agent import RandomAgent
from conftest import ROOT, run_collect
from smbwm.collection.collector import EpisodeJob, collect_worker
from smbwm.data.episode import list_episodes, read_episode


def test_collect_with_documented_overrides_round_trips_and_resumes(tmp_path):
    args = ["env=nes", "agent=random", "episodes=3", "max_steps=40", "level=[1-1,4-2]", f"out_dir={tmp_path}",
            "workers=2", "seed=7"]
    report = run_collect(args)
    files = list_episodes(tmp_path)
    assert report["episodes_written"] == 3 and len(files) == 3
    levels = set()
    for p in files:
        ep = read_episode(p)
        assert ep.frames.shape == (len(ep) + 1, 240, 256, 3) and 1 <= len(ep) <= 40
        assert ep.attrs["source"] == "nes/random" and ep.attrs["env"] == "nes"
        assert json.loads(ep.attrs["agent_config"])["_target_"].endswith("RandomAgent")
        assert ep.info["world"][0] * 10 + ep.info["stage"][0] in (11, 42)
        levels.add(ep.attrs["level"])
    assert levels == {"1-1", "4-2"}
    assert ep.attrs["collect_command"] == ("python src/collect.py env=nes agent=random episodes=3 max_steps=40 "
                                           "'level=[1-1,4-2]' out_dir=<dir> workers=2 seed=7")
    summary = json.loads((tmp_path / "summary_nes-random_s7.json").read_text())
    assert summary["steps"] == report["steps"] and abs(sum(summary["actions"].values()) - 1) < 0.01
    again = run_collect(args)                     # the same command resumes: nothing new to do
    assert again["episodes_written"] == 0 and again["episodes_already_present"] == 3


def test_total_steps_budget(tmp_path):
    report = run_collect(["agent=balanced", "total_steps=60", "max_steps=25", f"out_dir={tmp_path}", "seed=1"])
    assert 60 <= report["steps"] < 60 + 25


@pytest.mark.parametrize("override, needle", [("level=9-9", "bad level"), ("episodes=0", "episodes must be"),
                                              ("workers=0", "workers must be")])
def test_bad_overrides_are_one_clear_line(tmp_path, capsys, override, needle):
    with pytest.raises(SystemExit) as e:
        run_collect([override, f"out_dir={tmp_path}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


class _StopsAfter(RandomAgent):
    """An agent whose back end goes away mid-episode (what the VLM agent does when its server dies)."""

    def __init__(self, after: int, **kw):
        super().__init__(**kw)
        self.after, self.n = after, 0

    def _act(self, observation, info):
        self.n += 1
        if self.n > self.after:
            raise AgentStopped("server went away")
        return super()._act(observation, info)


def test_agent_stopped_saves_the_episode_so_far_and_stops(tmp_path):
    from smbwm.envs.smb_env import SuperMarioBrosGym
    jobs = [EpisodeJob(index=i, level="1-1", seed=i) for i in range(3)]
    res = collect_worker(lambda lv: SuperMarioBrosGym(lv), lambda: _StopsAfter(12, seed=0), jobs, tmp_path,
                         "nes/test", max_steps=100, attrs={})
    files = list_episodes(tmp_path)
    assert len(files) == 1 and res.episodes == 1 and res.errors == ["agent stopped: server went away"]
    ep = read_episode(files[0])
    assert len(ep) == 12 and ep.truncated[-1] and ep.attrs["stopped_reason"] == "server went away"


def _kill_mid_episode(out: Path, sig: int, workers: int, group: bool) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(
        [sys.executable, "src/collect.py", "agent=scripted", "agent.explore=0", "episodes=50", "max_steps=100000", "level=1-1",
         f"out_dir={out}", f"workers={workers}", "seed=0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.time() + 120
    # wait until an episode is committed: the workers are then well into their next ones (episodes are
    # built in memory, so an episode in progress has no file to watch)
    while time.time() < deadline and proc.poll() is None and not list_episodes(out):
        time.sleep(0.2)
    time.sleep(1.0)
    assert proc.poll() is None, "collector exited before it could be killed"
    if group:
        os.killpg(proc.pid, sig)           # Ctrl-C in a terminal: the whole process group gets it
    else:
        proc.send_signal(sig)              # `kill PID`: only the main process
    try:
        output, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc, output


@pytest.mark.parametrize("sig, workers, group", [(signal.SIGINT, 1, False), (signal.SIGINT, 2, True),
                                                  (signal.SIGTERM, 2, False)])
def test_killing_the_collector_leaves_only_whole_files(tmp_path, sig, workers, group):
    proc, output = _kill_mid_episode(tmp_path, sig, workers, group)
    assert not list(tmp_path.glob("*.tmp")), output
    files = list_episodes(tmp_path)
    assert len(files) >= workers, output
    for p in files:                       # every file that looks whole is whole
        ep = read_episode(p)
        assert ep.frames.shape[0] == len(ep) + 1 and (ep.terminated[-1] or ep.truncated[-1])
    stopped = [ep for ep in map(lambda p: read_episode(p, frames=False), files) if ep.truncated[-1]]
    # each worker's episode in progress is saved, flagged (unless it ended by itself on that very step)
    assert 1 <= len(stopped) <= workers, output
    assert all(ep.attrs["stopped_reason"] == "stopped by the user" for ep in stopped)
    # each file says how to collect it again (python src/collect.py's own overrides, out_dir as <dir>)
    assert {read_episode(p, frames=False).attrs["collect_command"] for p in files} == {
        "python src/collect.py agent=scripted agent.explore=0 episodes=50 max_steps=100000 level=1-1 "
        f"out_dir=<dir> workers={workers} seed=0"}
    assert "Traceback" not in output and "episodes written" in output
    # and the killed run resumes: the saved episodes are kept, not redone
    report = run_collect(["agent=scripted", "agent.explore=0", f"episodes={len(files)}", "max_steps=10", "level=1-1",
                          f"out_dir={tmp_path}", f"workers={workers}", "seed=0", "summary=false"])
    assert report == {} and len(list_episodes(tmp_path)) == len(files)
