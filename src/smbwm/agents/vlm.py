"""A vision-language model as a data source: it sees the last frames and answers with an action id.

Works with any OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp, Ollama, a hosted
router). Two timing modes:
- "pause" (default): the env waits for each call, as if the game were paused while the model thinks;
- "realtime": the game runs at `realtime_fps` with the previous action while a background thread
  waits for the reply, so slow models really play slowly (the lag is measured).
A chosen action is held for `hold` steps either way. A server that stays down raises AgentStopped:
the collector saves the episode so far as truncated and reports the reason once.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from smbwm import actions as A
from smbwm.agents.base import Agent
from smbwm.agents.vlm_client import ChatClient, ClientConfig
from smbwm.agents.vlm_prompt import (DEFAULT_SYSTEM_PROMPT, PromptConfig, action_list, build_messages, parse_action,
                               png_data_url)

MODES = ("pause", "realtime")


@dataclass
class Decision:
    index: int | None     # None: the reply named no legal action
    text: str
    latency: float
    retries: int
    rate_limited: int
    asked_at: int         # agent step at which the frames were sent


class VLMAgent(Agent):
    name = "vlm"

    def __init__(self, model: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 action_set: str | Sequence[int] = "simple", system_prompt: str | None = None,
                 prompt_file: str | None = None, history: int = 3, history_stride: int = 2, upscale: int = 1,
                 detail: str | None = None, hold: int = 4, mode: str = "pause", realtime_fps: float = 15.0,
                 fallback: str | int = "NOOP", timeout: float = 60.0, max_retries: int = 3, backoff: float = 1.0,
                 max_backoff: float = 30.0, max_retry_after: float = 120.0, max_tokens: int | None = None,
                 temperature: float | None = None, extra_body: dict | None = None, print_summary: bool = True,
                 seed: int | None = None):
        super().__init__(action_set, seed)
        if mode not in MODES:
            raise ValueError(f"agent.mode must be one of {MODES}, got {mode!r}")
        if history < 1 or history_stride < 1 or hold < 1 or upscale < 1:
            raise ValueError("agent.history, agent.history_stride, agent.hold and agent.upscale must be >= 1")
        if prompt_file:
            if not Path(prompt_file).is_file():
                raise ValueError(f"agent.prompt_file: no such file {prompt_file}")
            system_prompt = Path(prompt_file).read_text()
        self.prompt = PromptConfig(system_prompt or DEFAULT_SYSTEM_PROMPT, int(upscale), detail)
        self.client = ChatClient(ClientConfig(base_url, api_key, model, timeout, max_retries, backoff, max_backoff,
                                              max_retry_after, max_tokens, temperature, dict(extra_body or {})), seed)
        self.history, self.stride, self.hold, self.mode = int(history), int(history_stride), int(hold), mode
        self.period = 1.0 / realtime_fps if realtime_fps and realtime_fps > 0 else 0.0
        self.fallback = None if str(fallback).lower() == "previous" else self._index_of(fallback)
        # [frame, PNG data URL or None]: a frame is encoded once, when first sent, and reused by later calls
        self.frames: deque[list] = deque(maxlen=(self.history - 1) * self.stride + 1)
        self.latencies: list[float] = []
        self.lags: list[int] = []
        self.calls = self.fallbacks = self.retries = self.rate_limited = 0
        self.print_summary = bool(print_summary)
        self._reset_episode()

    def _index_of(self, action: str | int) -> int:
        byte = A.to_byte(str(action).split("+")) if isinstance(action, str) else int(action)
        if byte not in self.actions:
            raise ValueError(f"agent.fallback {action!r} is not in the action set ({action_list(self.actions)})")
        return self.actions.index(byte)

    def _reset_episode(self) -> None:
        self.frames.clear()
        self.current = self.fallback if self.fallback is not None else 0
        self.left, self.t = 0, 0
        self.pending: Future | None = None   # an orphaned realtime call finishes unseen in its thread
        self.next_tick: float | None = None
        self.ep_calls = self.ep_fallbacks = 0
        self.ep_latency = 0.0

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._reset_episode()

    # -- one call -----------------------------------------------------------------------------
    def _snapshot(self) -> tuple[list[list], list[int]]:
        n = len(self.frames)
        ages = [a for a in range((self.history - 1) * self.stride, -1, -self.stride) if a < n]
        return [self.frames[n - 1 - a] for a in ages], ages

    def _decide(self, frames: list[list], ages: list[int], asked_at: int) -> Decision:
        for entry in frames:
            if entry[1] is None:
                entry[1] = png_data_url(entry[0], self.prompt.upscale)
        images = [url for _, url in frames]
        reply = self.client.complete(build_messages(self.prompt, images, ages, self.actions, self.hold))
        return Decision(parse_action(reply.text, self.actions), reply.text, reply.latency, reply.retries,
                        reply.rate_limited, asked_at)

    def _submit(self, frames: list[list], ages: list[int]) -> Future:
        fut: Future = Future()
        asked_at = self.t

        def run() -> None:
            try:
                fut.set_result(self._decide(frames, ages, asked_at))
            except BaseException as e:  # noqa: BLE001 - re-raised in the acting thread
                fut.set_exception(e)
        threading.Thread(target=run, name="vlm-call", daemon=True).start()
        return fut

    def _apply(self, d: Decision) -> None:
        self.calls += 1
        self.ep_calls += 1
        self.latencies.append(d.latency)
        self.ep_latency += d.latency
        self.retries += d.retries
        self.rate_limited += d.rate_limited
        self.lags.append(self.t - d.asked_at)
        if d.index is not None:
            self.current = d.index
        else:
            self.fallbacks += 1
            self.ep_fallbacks += 1
            if self.fallback is not None:   # None: "previous", keep the action being held
                self.current = self.fallback
        self.last_text = d.text
        self.left = self.hold

    # -- acting -------------------------------------------------------------------------------
    def _pace(self) -> None:
        """Realtime mode runs the game at `realtime_fps` (15 = real NES speed) while the model thinks."""
        if not self.period:
            return
        now = time.perf_counter()
        if self.next_tick is not None and self.next_tick > now:
            time.sleep(self.next_tick - now)
            now = self.next_tick
        self.next_tick = now + self.period   # falling behind does not cause a catch-up burst

    def _act(self, observation: np.ndarray, info: dict[str, Any]) -> int:
        self.frames.append([np.array(observation, copy=True), None])  # emulators reuse their screen buffer
        self.last_text = None
        if self.mode == "pause":
            if self.left <= 0:
                self._apply(self._decide(*self._snapshot(), asked_at=self.t))
        else:
            self._pace()
            if self.pending is not None and self.pending.done():
                d, self.pending = self.pending.result(), None   # re-raises AgentStopped from the thread
                self._apply(d)
            if self.pending is None and self.left <= 0:
                self.pending = self._submit(*self._snapshot())
        self.left -= 1
        self.t += 1
        return self.actions[self.current]

    # -- reporting ----------------------------------------------------------------------------
    def episode_attrs(self) -> dict[str, Any]:
        return {"vlm_model": self.client.model or "", "vlm_base_url": self.client.where,
                "vlm_prompt": self.prompt.system_prompt, "vlm_history": self.history,
                "vlm_history_stride": self.stride, "vlm_upscale": self.prompt.upscale, "vlm_hold": self.hold,
                "vlm_mode": self.mode, "vlm_actions": action_list(self.actions), "vlm_calls": self.ep_calls,
                "vlm_fallbacks": self.ep_fallbacks,
                "vlm_mean_latency_s": round(self.ep_latency / self.ep_calls, 3) if self.ep_calls else 0.0}

    def summary(self) -> dict[str, Any]:
        """Statistics of the whole run; collect.py adds steps, mean max x_pos and the action histogram
        of its own and stores this dict in summary_<source>_s<seed>.json."""
        lat = self.latencies
        return {**super().summary(), "model": self.client.model, "mode": self.mode,
                "steps": sum(self.counts.values()), "calls": self.calls, "fallbacks": self.fallbacks,
                "fallback_rate": round(self.fallbacks / self.calls, 4) if self.calls else None,
                "mean_latency_s": round(float(np.mean(lat)), 3) if lat else None,
                "p90_latency_s": round(float(np.percentile(lat, 90)), 3) if lat else None,
                "mean_lag_steps": round(float(np.mean(self.lags)), 2) if self.lags else None,
                "retries": self.retries, "rate_limited": self.rate_limited}

    def summary_line(self) -> str:
        s = self.summary()
        if not s["calls"]:
            return f"vlm ({s['model'] or 'model unknown'}, {self.client.where}): no answered call"
        line = (f"vlm ({s['model']}, {s['mode']} mode): {s['steps']} steps, {s['calls']} calls, "
                f"fallbacks {s['fallbacks']} ({s['fallback_rate']:.1%}), mean latency {s['mean_latency_s']:.3f} s "
                f"(p90 {s['p90_latency_s']:.3f} s), {s['retries']} retries, {s['rate_limited']} rate-limited")
        return line + (f", mean lag {s['mean_lag_steps']} steps" if self.mode == "realtime" else "")

    def close(self) -> None:
        if self.print_summary:
            tqdm.write(self.summary_line())
        self.client.close()
