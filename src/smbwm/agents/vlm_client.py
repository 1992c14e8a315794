"""Chat-completions calls for the VLM agent through the official `openai` client, with our own
retry loop (timeouts, connection errors, 5xx and 429 with Retry-After) so that every retry is
counted and a server that stays down becomes one clear AgentStopped line instead of a traceback.
"""
from __future__ import annotations

import email.utils
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import openai

from smbwm.agents.base import AgentStopped

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class ClientConfig:
    """Endpoint and call policy. base_url/api_key default to OPENAI_BASE_URL / OPENAI_API_KEY (the
    client's own variables); a local server without keys gets the placeholder "EMPTY"."""

    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None          # None: the server's only model (GET /models)
    timeout: float = 60.0             # seconds per attempt
    max_retries: int = 3              # extra attempts after the first one
    backoff: float = 1.0              # first wait; doubles per retry (with jitter)
    max_backoff: float = 30.0
    max_retry_after: float = 120.0    # longest Retry-After we honour before giving up
    max_tokens: int | None = None
    temperature: float | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)  # provider-specific fields


@dataclass
class Reply:
    text: str
    latency: float        # seconds, retries and waits included
    retries: int
    rate_limited: int


def _first_line(e: BaseException, limit: int = 200) -> str:
    msg = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {msg[:limit]}" if msg else type(e).__name__


def retry_after(e: openai.APIStatusError) -> float | None:
    """Seconds the server asked us to wait (Retry-After as seconds or HTTP date, or retry-after-ms)."""
    h = e.response.headers
    try:
        if h.get("retry-after-ms"):
            return float(h["retry-after-ms"]) / 1000
        v = h.get("retry-after")
        if v is None:
            return None
        try:
            return max(0.0, float(v))
        except ValueError:
            return max(0.0, email.utils.parsedate_to_datetime(v).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


class ChatClient:
    def __init__(self, cfg: ClientConfig, seed: int | None = None):
        self.cfg = cfg
        key = cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.client = openai.OpenAI(base_url=cfg.base_url or None, api_key=key, timeout=cfg.timeout, max_retries=0)
        self.where = str(self.client.base_url).rstrip("/")
        self.model = cfg.model or None
        self._jitter = random.Random(seed)

    def _stop(self, what: str) -> AgentStopped:
        return AgentStopped(f"VLM server {self.where}: {what}")

    def _with_retries(self, call):
        """Run `call()`; returns (result, retries, rate_limited). Raises AgentStopped when it fails."""
        retries = limited = 0
        while True:
            try:
                return call(), retries, limited
            except openai.APIStatusError as e:
                if e.status_code not in RETRYABLE_STATUS:
                    hint = {401: " (check agent.api_key or OPENAI_API_KEY)", 403: " (check agent.api_key)",
                            404: " (check agent.model and agent.base_url)"}.get(e.status_code, "")
                    raise self._stop(f"answered HTTP {e.status_code}{hint}: {_first_line(e)}") from None
                wait = retry_after(e) if e.status_code == 429 else None
                limited += e.status_code == 429
                last = f"HTTP {e.status_code} ({_first_line(e)})"
            except (openai.APIConnectionError, openai.APIResponseValidationError) as e:  # timeouts included
                wait, last = None, _first_line(e)
            if retries >= self.cfg.max_retries:
                raise self._stop(f"failed {retries + 1} attempts, last: {last}") from None
            if wait is None:
                wait = min(self.cfg.max_backoff, self.cfg.backoff * 2 ** retries) * (0.75 + 0.5 * self._jitter.random())
            elif wait > self.cfg.max_retry_after:
                raise self._stop(f"rate limited, Retry-After {wait:.0f} s exceeds max_retry_after "
                                 f"{self.cfg.max_retry_after:.0f} s") from None
            time.sleep(wait)
            retries += 1

    def resolve_model(self) -> str:
        """The configured model, or the one model the server lists (local vLLM/llama.cpp/Ollama)."""
        if self.model:
            return self.model
        page, _, _ = self._with_retries(lambda: self.client.models.list())
        ids = [m.id for m in page.data]
        if len(ids) != 1:
            raise self._stop(f"agent.model is not set and the server lists {len(ids)} models "
                             f"({', '.join(ids[:8]) or 'none'}): choose one with agent.model=NAME")
        self.model = ids[0]
        return self.model

    def complete(self, messages: list[dict[str, Any]]) -> Reply:
        model = self.resolve_model()
        kw: dict[str, Any] = {"model": model, "messages": messages}
        if self.cfg.max_tokens:
            kw["max_tokens"] = int(self.cfg.max_tokens)
        if self.cfg.temperature is not None:
            kw["temperature"] = float(self.cfg.temperature)
        if self.cfg.extra_body:
            kw["extra_body"] = dict(self.cfg.extra_body)
        t0 = time.perf_counter()
        resp, retries, limited = self._with_retries(lambda: self.client.chat.completions.create(**kw))
        choices = getattr(resp, "choices", None) or []
        text = (choices[0].message.content or "") if choices and choices[0].message else ""
        return Reply(text=text, latency=time.perf_counter() - t0, retries=retries, rate_limited=limited)

    def close(self) -> None:
        self.client.close()
