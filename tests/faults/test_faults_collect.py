"""Fault probes of collect.py (issue 19, points 3, 4 and 9): two collectors on one directory, kill -9,
a full disk, and bad options."""
from __future__ import annotations

import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_collect
from fault_tools import children, kill_tree, one_error_line, wait_gone

from smbwm.data.episode import list_episodes, read_episode

SCRIPTED = ["agent=scripted", "agent.explore=0", "level=1-1", "seed=0"]


def start_collect(out: Path, *args: str) -> subprocess.Popen:
    """The collector in its own session, its output in a log file beside out (a pipe could fill up)."""
    out.mkdir(parents=True, exist_ok=True)
    log = open(out.parent / f"collect_{time.monotonic_ns()}.log", "w")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "src/collect.py", f"out_dir={out}", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def wait_for_episodes(out: Path, proc: subprocess.Popen, n: int = 1, seconds: float = 180) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None and len(list_episodes(out)) < n:
        time.sleep(0.1)
    assert proc.poll() is None and len(list_episodes(out)) >= n, "the collector ended or stalled"


def all_read_back(out: Path) -> list[Path]:
    files = list_episodes(out)
    for p in files:
        ep = read_episode(p)
        assert ep.frames.shape[0] == len(ep) + 1 and (ep.terminated[-1] or ep.truncated[-1]), p
    return files


def test_a_second_collector_on_the_same_dir_stops_before_touching_a_file(tmp_path):
    out = tmp_path / "eps"
    first = start_collect(out, *SCRIPTED, "episodes=50", "max_steps=100000", "workers=2")
    try:
        wait_for_episodes(out, first)
        before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        second = subprocess.run([sys.executable, "src/collect.py", f"out_dir={out}", *SCRIPTED, "episodes=50",
                                 "max_steps=100000", "workers=2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
        one_error_line(second.returncode, second.stderr, "another collector", str(out))
        after = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
        assert all(after[k] == t for k, t in before.items() if k in after and k != ".collect.lock")
        assert first.poll() is None                     # the first one goes on
    finally:
        os.killpg(first.pid, signal.SIGINT)             # Ctrl-C: saves the episodes in progress
        first.wait(timeout=120)
    all_read_back(out)
    assert not list(out.glob("*.tmp"))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_kill_9_then_rerun_leaves_only_whole_files_and_no_orphans(tmp_path, workers):
    """kill -9 of the collector at random points; its workers die with it; the usual re-run completes
    the set and every committed file reads back."""
    rng = random.Random(workers)
    out = tmp_path / "eps"
    cmd = [*SCRIPTED, "episodes=6", "max_steps=400", f"workers={workers}"]
    for round_ in range(2):
        proc = start_collect(out, *cmd)
        try:
            wait_for_episodes(out, proc, n=round_ + 1)
            time.sleep(rng.uniform(0, 1.5))
            kids = children(proc.pid)
            assert len(kids) >= (workers if workers > 1 else 0)
            os.kill(proc.pid, signal.SIGKILL)           # the parent only, as the OOM killer would
            proc.wait(timeout=30)
            assert wait_gone(kids) == [], "worker processes outlived the collector"
        finally:
            kill_tree(proc)
        all_read_back(out)
    again = subprocess.run([sys.executable, "src/collect.py", f"out_dir={out}", *cmd], cwd=ROOT, capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-3000:]
    assert len(all_read_back(out)) == 6 and not list(out.glob("*.tmp"))


def _limit_file_size(limit: int):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_write_that_fails_drops_the_episode_in_flight_with_one_line(tmp_path):
    """A disk that refuses writes (here: a file-size limit, which needs no root): no crash, one line,
    exit 1, the episode in flight dropped and the files already there kept."""
    out = tmp_path / "eps"
    run_collect([*SCRIPTED, "episodes=1", "max_steps=40", f"out_dir={out}", "summary=false"])
    kept = {p: p.read_bytes() for p in list_episodes(out)}
    r = subprocess.run([sys.executable, "src/collect.py", f"out_dir={out}", *SCRIPTED, "episodes=3", "max_steps=40"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, preexec_fn=_limit_file_size(20_000))
    one_error_line(r.returncode, r.stderr, "cannot write", "dropped", code=1)
    assert {p: p.read_bytes() for p in list_episodes(out)} == kept
    all_read_back(out)
    assert not list(out.glob("*.tmp"))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MB tmpfs (needs root and mount rights; skipped elsewhere)."""
    d = tmp_path / "disk"
    d.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)],
                                                       capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    yield d
    subprocess.run(["umount", str(d)], capture_output=True)


def test_a_full_disk_drops_the_episode_in_flight_with_one_line(tiny_disk):
    out = tiny_disk / "eps"
    r = subprocess.run([sys.executable, "src/collect.py", f"out_dir={out}", *SCRIPTED, "episodes=12", "max_steps=40"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    one_error_line(r.returncode, r.stderr, "No space left", code=1)
    assert list_episodes(out), "the episodes that fitted are kept"
    all_read_back(out)
    assert not list(out.glob("*.tmp"))


@pytest.mark.parametrize("override, words", [
    (["episodes=abc"], ["episodes"]),
    (["max_steps=abc"], ["max_steps"]),
    (["episodes=2.7"], ["episodes", "2.7"]),
    (["total_steps=-5"], ["total_steps"]),
    (["compression=zip"], ["compression", "zip"]),
    (["level=[]"], ["level"]),
    (["seed=abc"], ["seed", "abc"]),
    (["env=dream", "level=3-1", "episodes=1", "max_steps=3"], ["3-1", "spawn"]),
])
def test_bad_collect_options_are_one_line(tmp_path, capsys, override, words):
    with pytest.raises(SystemExit) as e:
        quick = [] if any(o.startswith("max_steps=") for o in override) else ["max_steps=5"]  # old code ran them
        run_collect([*quick, *override, f"out_dir={tmp_path / 'eps'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and all(w in err[0] for w in words), err
    assert not list_episodes(tmp_path / "eps") if (tmp_path / "eps").exists() else True


def test_steps_per_second_counts_only_this_runs_steps(tmp_path):
    args = [*SCRIPTED, "max_steps=30", f"out_dir={tmp_path}"]
    first = run_collect(args + ["episodes=1"])
    second = run_collect(args + ["episodes=2"])
    assert second["episodes_written"] == 1 and second["steps_already_present"] == first["steps"]
    new = [p for p in list_episodes(tmp_path) if "e000001" in p.name]
    assert second["steps"] == len(read_episode(new[0], frames=False))
    assert json.loads((tmp_path / "summary_nes-scripted_s0.json").read_text())["steps"] == second["steps"]
