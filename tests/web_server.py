"""A real uvicorn server of the web app (src/serve.py's) on a free 127.0.0.1 port, in a thread."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_web_app(level_maker=None, **cfg) -> Iterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT) of a WebApp(ServeConfig(**cfg)) served by uvicorn."""
    import uvicorn
    from smbwm.serving.web_app import ServeConfig, WebApp
    conf = ServeConfig(port=free_port(), **cfg)
    server = uvicorn.Server(uvicorn.Config(WebApp(conf, level_maker=level_maker).build(), host=conf.host, port=conf.port,
                                           ws_max_size=conf.max_message_bytes, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    try:
        yield f"http://{conf.host}:{conf.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
