"""The web app: play the dream, make a MarioGPT level, watch an agent, in a browser.

    python src/serve.py                         # then open http://127.0.0.1:8000
    python src/serve.py --port 8080 --host 0.0.0.0 --max-games 1

Binds 127.0.0.1 unless --host says otherwise. At most --max-games games step at once, --max-waiting
more wait in line, the next player is told the server is busy. docs/web.md has the details.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from smbwm.utils.config_errors import config_error


def parse_args(argv: Sequence[str] | None = None):
    from smbwm.serving.web_app import ServeConfig
    d = ServeConfig()
    p = argparse.ArgumentParser(prog="python src/serve.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}: this machine only)")
    p.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port})")
    p.add_argument("--max-games", type=int, default=d.max_games, help=f"games at once (default {d.max_games})")
    p.add_argument("--max-waiting", type=int, default=d.max_waiting,
                   help=f"players waiting in line beyond that (default {d.max_waiting})")
    p.add_argument("--idle-timeout", type=float, default=d.idle_timeout_s, dest="idle_timeout_s",
                   help=f"seconds without input before a game ends (default {d.idle_timeout_s:g})")
    p.add_argument("--fps", type=float, default=d.fps, help=f"game steps per second (default {d.fps:g})")
    p.add_argument("--threads", type=int, help="torch threads for the dream (default: all cores)")
    a = p.parse_args(argv)
    if not 0 < a.port < 65536:
        config_error(f"--port must be 1..65535, got {a.port}")
    if a.max_games < 1 or a.max_waiting < 0:
        config_error("--max-games must be >= 1 and --max-waiting >= 0")
    if a.threads is not None and a.threads < 1:
        config_error(f"--threads must be >= 1, got {a.threads}")
    if a.idle_timeout_s <= 0 or not 0 < a.fps <= 60:
        config_error("--idle-timeout must be > 0 and --fps in (0, 60]")
    return ServeConfig(**vars(a))


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")        # the player's modules never open a window here
    cfg = parse_args(argv)
    import uvicorn
    from smbwm.serving.web_app import WebApp
    app = WebApp(cfg).build()
    print(f"serving on http://{cfg.host}:{cfg.port}  (Ctrl-C stops)", flush=True)
    try:
        uvicorn.run(app, host=cfg.host, port=cfg.port, ws_max_size=cfg.max_message_bytes, log_level="warning")
    except OSError as e:
        config_error(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
