"""What the VLM agent itself costs per step, measured against the local scripted chat server of the
tests (instant answers, so the figures are the agent's overhead, not a model's thinking time).

    nice -n 19 python scripts/bench_vlm.py [--steps 120]

Prints one table: PNG encoding per frame, request size, round trip per call through the official
`openai` client, and end-to-end steps/s on the real emulator for a few history/upscale/hold settings.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time

import gymnasium
import numpy as np

import smbwm.envs  # noqa: F401 - registers the emulator ids
from smbwm.agents.vlm import VLMAgent
from smbwm.agents.vlm_prompt import PromptConfig, build_messages, png_data_url
from smbwm.utils.paths import REPO_ROOT


def _tests_chat_server():
    """tests/chat_server.py, loaded from its file: tests/ is not a package, and the server is a test fixture."""
    spec = importlib.util.spec_from_file_location("chat_server", REPO_ROOT / "tests" / "chat_server.py")
    module = sys.modules["chat_server"] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chat_server = _tests_chat_server()
ChatServer, ChatServerConfig = chat_server.ChatServer, chat_server.ChatServerConfig

SETTINGS = [  # (history, upscale, hold)
    (1, 1, 1), (3, 1, 1), (3, 2, 1), (5, 1, 1), (3, 1, 4),
]


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


class _Right:
    """The baseline: the same loop with an agent that costs nothing."""

    def reset(self, seed: int) -> None:
        pass

    def act(self, obs, info) -> int:
        return 0x80


def run(env, agent, steps: int) -> float:
    obs, info = env.reset(seed=0)
    agent.reset(0)
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(agent.act(obs, info))
        if term or trunc:
            obs, info = env.reset(seed=0)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=120, help="emulator steps per setting")
    args = ap.parse_args()
    env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    obs, info = env.reset(seed=0)
    for _ in range(30):  # a screen with some content, not the first frame
        obs, *_, info = env.step(0x80)
    frame = obs.copy()
    base = run(env, _Right(), args.steps)
    rows = [("emulator step alone", f"{base * 1e3:.2f} ms", "", "")]
    for up in (1, 2):
        png = timed(lambda: png_data_url(frame, up), 20)
        kb = len(png_data_url(frame, up)) / 1024
        rows.append((f"PNG encode, upscale {up}", f"{png * 1e3:.2f} ms", f"{kb:.1f} KB base64", ""))
    with ChatServer(ChatServerConfig(default="1")) as srv:
        for history, up, hold in SETTINGS:
            agent = VLMAgent(base_url=srv.base_url, history=history, history_stride=1, upscale=up, hold=hold,
                             print_summary=False)
            per_step = run(env, agent, args.steps)
            images = [png_data_url(frame, up)] * history
            size = len(json.dumps(build_messages(PromptConfig(upscale=up), images, list(range(history)),
                                                 agent.actions, hold))) / 1024
            rows.append((f"history {history}, upscale {up}, hold {hold}",
                         f"{(per_step - base) * 1e3:.1f} ms/step overhead",
                         f"{size:.0f} KB/request", f"call {np.mean(agent.latencies) * 1e3:.1f} ms, {1 / per_step:.1f} steps/s"))
            agent.close()
    env.close()
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    print(f"VLM agent overhead against the local scripted server ({args.steps} steps per row, pause mode)")
    for r in rows:
        print("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())


if __name__ == "__main__":
    main()
