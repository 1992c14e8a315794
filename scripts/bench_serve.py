"""Measured speed of the web app: N players on loopback (1, 2, 4) each playing the dream over the WebSocket,
the frames/s each gets and the time from a key press to the first frame that carries it; beside the pygame
player's own speed on the same machine (scripts/bench_play.py's pipeline, headless).

    python scripts/bench_serve.py                      # N = 1, 2, 4; 3 runs of 8 s each
    python scripts/bench_serve.py --players 1,2 --runs 2 --seconds 6

Each player holds right and lets go every second; the latency of a change is measured at the client, from
sending the keys to receiving the step whose buttons show it. A press waits for the next game step (half a
step period on average at 15 steps/s), then the step itself runs; the pygame player waits the same way,
so its key-to-frame time is about half a period plus its median step time (printed as its estimate).
Prints a table (medians over runs) and writes --json.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from smbwm.utils.paths import REPO_ROOT

RIGHT = 128


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def player(url: str, seconds: float, out: dict) -> None:
    from websockets.sync.client import connect
    with connect(url, max_size=None) as ws:
        ws.send(json.dumps({"t": "start", "world": "dream", "spawn": 0}))
        while True:
            m = ws.recv(timeout=300)
            if isinstance(m, str) and json.loads(m)["t"] in ("started", "busy", "error"):
                msg = json.loads(m)
                if msg["t"] != "started":
                    out["error"] = msg.get("message", msg["t"])
                    return
                break
        steps, latencies, step_ms = [], [], []
        held, changed_at, t0 = False, None, time.monotonic()
        next_toggle = t0 + 1.0
        while time.monotonic() - t0 < seconds:
            now = time.monotonic()
            if now >= next_toggle and changed_at is None:
                held, changed_at, next_toggle = not held, now, now + 1.0
                ws.send(json.dumps({"t": "keys", "held": ["right"] if held else [], "pressed": []}))
            m = ws.recv(timeout=60)
            if isinstance(m, bytes):
                continue
            msg = json.loads(m)
            if msg["t"] != "step":
                continue
            t = time.monotonic()
            steps.append(t)
            step_ms.append(msg.get("step_ms", 0.0))
            if changed_at is not None and (msg["buttons"] == RIGHT) == held:
                latencies.append((t - changed_at) * 1000)
                changed_at = None
        span = steps[-1] - steps[len(steps) // 5] if len(steps) > 5 else 0   # the first fifth warms up
        out.update(fps=(len(steps) - 1 - len(steps) // 5) / span if span > 0 else 0.0,
                   latency_ms=float(np.median(latencies)) if latencies else float("nan"),
                   step_ms=float(np.median(step_ms)) if step_ms else float("nan"), presses=len(latencies))


def bench_web(n: int, runs: int, seconds: float, extra: list[str]) -> dict:
    rows = []
    for _ in range(runs):
        port = free_port()
        server = subprocess.Popen([sys.executable, str(REPO_ROOT / "src" / "serve.py"), "--port", str(port),
                                   "--max-games", str(n), "--max-waiting", "0", *extra], stdout=subprocess.PIPE, text=True)
        try:
            server.stdout.readline()                              # "serving on ..."
            time.sleep(1.0)
            outs = [{} for _ in range(n)]
            threads = [threading.Thread(target=player, args=(f"ws://127.0.0.1:{port}/ws/game", seconds, o)) for o in outs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            errors = [o["error"] for o in outs if "error" in o]
            if errors:
                raise SystemExit(f"error: a player could not play: {errors[0]}")
            rows.append(outs)
        finally:
            server.terminate()
            server.wait(timeout=30)
    per = lambda k: float(np.median([o[k] for outs in rows for o in outs]))  # noqa: E731
    return {"players": n, "runs": runs, "seconds": seconds, "fps_each": per("fps"),
            "fps_each_min": float(min(o["fps"] for outs in rows for o in outs)),
            "latency_ms": per("latency_ms"), "step_ms": per("step_ms"),
            "load_average": round(os.getloadavg()[0], 2)}


def bench_pygame(runs: int, frames: int, threads: str | None) -> dict:
    os.environ["SDL_VIDEODRIVER"] = "dummy"
    from smbwm.game.config import parse_args
    from smbwm.game.run import run_headless
    rows = []
    for r in range(runs):
        with tempfile.TemporaryDirectory() as out:
            rows.append(run_headless(parse_args(["--headless", "--frames", str(frames), "--actions", "random",
                                                 "--seed", str(r), "--out", out,
                                                 *(["--threads", threads] if threads else [])])))
    fps = float(np.median([row["fps"] for row in rows]))
    step = float(np.median([row["step_ms_median"] for row in rows]))
    return {"fps": fps, "step_ms": step, "latency_ms_estimate": 1000 / 15 / 2 + step}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--players", default="1,2,4", help="comma list of concurrent players")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0, help="play time per player per run")
    p.add_argument("--threads", help="passed to src/serve.py --threads (torch threads for the dream)")
    p.add_argument("--json", default=str(REPO_ROOT / "runs" / "bench_serve.json"))
    a = p.parse_args()
    try:
        players = [int(x) for x in a.players.split(",")]
    except ValueError:
        raise SystemExit(f"error: --players must be a comma list of integers, got {a.players!r}")
    if a.runs < 1 or a.seconds < 3 or min(players) < 1:
        raise SystemExit("error: --runs >= 1, --seconds >= 3 and players >= 1")
    print(f"pygame player (headless, {a.runs} runs of 60 frames) ...", flush=True)
    pg = bench_pygame(a.runs, 60, a.threads)
    rows = []
    for n in players:
        print(f"{n} web player(s) ...", flush=True)
        rows.append(bench_web(n, a.runs, a.seconds, ["--threads", a.threads] if a.threads else []))
    print("\n| player | frames/s each (median, min) | key press -> frame (ms, median) | step (ms) | load |")
    print("|---|---|---|---|---|")
    print(f"| pygame player, 1 | {pg['fps']:.1f} | ~{pg['latency_ms_estimate']:.0f} (half a period + step) | "
          f"{pg['step_ms']:.0f} | |")
    for r in rows:
        print(f"| web, {r['players']} at once | {r['fps_each']:.1f}, {r['fps_each_min']:.1f} | {r['latency_ms']:.0f} | "
              f"{r['step_ms']:.0f} | {r['load_average']} |")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps({"pygame": pg, "web": rows}, indent=1))
    print(f"\nwrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
