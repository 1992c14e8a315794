"""The MCP server: the level generator, the dream and the level simulator as tools for any MCP client.

    python src/mcp_server.py                    # stdio (what a client launches)
    python src/mcp_server.py --http 8765        # streamable HTTP at http://127.0.0.1:8765/mcp

Tools: generate_level, level_suggestions, list_spawns, dream, play_level, model_card (docs/web.md has a
client config snippet). Models load on the first call that needs them, once.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from smbwm.utils.config_errors import config_error


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python src/mcp_server.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--http", type=int, metavar="PORT", help="serve streamable HTTP on PORT instead of stdio")
    p.add_argument("--host", default="127.0.0.1", help="address for --http (default 127.0.0.1: this machine only)")
    a = p.parse_args(argv)
    if a.http is not None and not 0 < a.http < 65536:
        config_error(f"--http must be a port 1..65535, got {a.http}")
    # stdout is the protocol channel on stdio: nothing else may print there
    for k, v in (("SDL_VIDEODRIVER", "dummy"), ("SDL_AUDIODRIVER", "dummy"), ("PYGAME_HIDE_SUPPORT_PROMPT", "1"),
                 ("TQDM_DISABLE", "1")):
        os.environ.setdefault(k, v)
    from smbwm.serving.mcp_tools import build_server
    server = build_server()
    if a.http is None:
        server.run("stdio")
    else:
        print(f"MCP over streamable HTTP at http://{a.host}:{a.http}/mcp", file=sys.stderr, flush=True)
        try:
            server.run("streamable-http", host=a.host, port=a.http)
        except OSError as e:
            config_error(f"cannot listen on {a.host}:{a.http}: {e.strerror or e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
