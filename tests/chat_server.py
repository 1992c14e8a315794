"""A real chat-completions HTTP server on 127.0.0.1 with scripted answers, for the VLM agent's tests
and its benchmark (scripts/bench_vlm.py). It speaks just enough of the OpenAI protocol for the
official client: GET /v1/models and POST /v1/chat/completions.

A script item is a reply text, or a dict:
    {"status": 500}                          an error status (JSON error body)
    {"status": 429, "retry_after": "0.2"}    rate limited, with a Retry-After header
    {"delay": 2.0, "text": "3"}              a slow reply (the client may have given up meanwhile)
When the script runs out, `default` answers (a text, or a callable taking the request body).
`die_after=N` goes down after N chat requests: later ones get no answer (the connection is dropped)
and the listening socket is closed, so new connections are refused.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

_DEAD = object()

@dataclass
class ChatServerConfig:
    script: list[Any] = field(default_factory=list)
    default: str | Callable[[dict], str] = "1"
    model: str = "scripted-vlm"
    die_after: int | None = None


class _Handler(BaseHTTPRequestHandler):
    server: "ChatServer"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": self.server.cfg.model, "object": "model",
                                                         "created": 0, "owned_by": "test"}]})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        item = self.server.next_item(body, {k.lower(): v for k, v in self.headers.items()})
        if item is _DEAD:
            self.close_connection = True   # no response at all: the client sees a dropped connection
            return
        if isinstance(item, dict) and "status" in item:
            headers = {"Retry-After": str(item["retry_after"])} if "retry_after" in item else {}
            self._send(int(item["status"]), {"error": {"message": f"scripted status {item['status']}",
                                                       "type": "server_error"}}, headers)
            return
        if isinstance(item, dict):
            time.sleep(float(item.get("delay", 0)))
            item = item.get("text", "")
        self._send(200, {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                         "model": body.get("model", self.server.cfg.model),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": item}}],
                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, cfg: ChatServerConfig | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.cfg = cfg or ChatServerConfig()
        self.script = deque(self.cfg.script)
        self.requests: list[dict] = []      # every chat request body, in arrival order
        self.times: list[float] = []        # perf_counter at each chat request's arrival
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def next_item(self, body: dict, headers: dict) -> Any:
        with self._lock:
            self.requests.append(body)
            self.times.append(time.perf_counter())
            self.headers.append(headers)
            n = len(self.requests)
            if self.cfg.die_after is not None and n > self.cfg.die_after:
                if n == self.cfg.die_after + 1:  # another thread: shutdown() waits for serve_forever
                    threading.Thread(target=self.stop, daemon=True).start()
                return _DEAD
            if self.script:
                return self.script.popleft()
        d = self.cfg.default
        return d(body) if callable(d) else d

    def start(self) -> "ChatServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()   # later connections are refused, like a server that went down

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.socket.fileno() != -1:
            self.stop()
