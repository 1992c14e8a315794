"""evaluate.py continues a run that died: a real evaluation of the tiny model, killed after its first
section and started again, writes the report an uninterrupted run writes; the kept sections' folder
is reused only by the same run."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
from conftest import ROOT

from smbwm.evaluation.resume import FinishedSections


def test_finished_sections_come_back_only_to_the_same_run(tmp_path):
    folder, key = tmp_path / "report.partial", {"config": {"seed": 0}, "episodes": {"a": ["x.hdf5"]}}
    store = FinishedSections(folder, key)
    assert store.done == []
    frames = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    store.put("episodes/fidelity", {"psnr": 27.5, "by_step": {"1": 0.5}}, {"dream": frames, "name": "01",
                                                                          "sheet": {"01": {15: frames[0]}}}, 3.0)
    store.put("spawns", {"runs": 7}, None, 1.0)
    again = FinishedSections(folder, key)
    assert again.done == ["episodes/fidelity", "spawns"]
    figures, pics, seconds = again.get("episodes/fidelity")
    assert figures == {"psnr": 27.5, "by_step": {"1": 0.5}} and seconds == 3.0
    assert np.array_equal(pics["dream"], frames) and pics["name"] == "01"
    assert np.array_equal(pics["sheet"]["01"][15], frames[0])              # an int key stays an int
    assert again.get("spawns") == ({"runs": 7}, None, 1.0) and again.get("heldout_levels/playability") is None
    assert FinishedSections(folder, {**key, "config": {"seed": 1}}).done == []   # another run: started over
    FinishedSections(folder, key).put("spawns", {"runs": 7}, None, 1.0)
    assert FinishedSections(folder, key, resume=False).done == []
    (folder / "run.json").write_text("{not json")
    assert FinishedSections(folder, key).done == []


def test_evaluate_killed_and_started_again_writes_the_uninterrupted_report(tiny_checkpoint, real_episodes,
                                                                         tiny_spawns, tmp_path):
    args = [sys.executable, "src/evaluate.py", f"checkpoint={tiny_checkpoint}", f"data.dir={real_episodes}",
            "eval.next_frame_samples=4", "eval.rollouts=2", "eval.horizons=[1,5]", "eval.speed_steps=2", "eval.speed_backend=torch",
            "playability.windows=2", "playability.window_steps=10", "playability.psnr_steps=[1]",
            "playability.spawn_steps=16", f"spawn_dir={tiny_spawns}"]
    whole = tmp_path / "whole" / "report.json"
    r = subprocess.run(args + [f"out={whole}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    cut = tmp_path / "cut" / "report.json"
    kept = cut.parent / "report.partial"
    p = subprocess.Popen(args + [f"out={cut}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not (kept / "episodes~fidelity.json").exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    p.kill()
    p.wait()
    assert (kept / "episodes~fidelity.json").exists() and not cut.exists()
    r = subprocess.run(args + [f"out={cut}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "continuing the run in" in r.stderr and "episodes/fidelity" in r.stderr
    a, b = json.loads(whole.read_text()), json.loads(cut.read_text())
    for rep in (a, b):                                    # timings differ from run to run
        rep.pop("eval_seconds"), rep.pop("speed")
    assert a == b
    assert not kept.exists()
    for name in ("report.png", "report.gif", "report_minute.gif", "report_spawns.png"):   # pictures of kept sections too
        assert (cut.parent / name).exists(), name
