"""Play the Super Mario Bros world model (the dream), the real game, or both side by side.

    python src/play.py                                  # the shipped checkpoint, spawns in spawn/
    python src/play.py --compare --spawn 0              # real emulator beside the dream, same buttons
    python src/play.py --real --record dataset_files/human   # play the real game, record episodes
    python src/play.py --headless --frames 100 --actions random --out runs/play

Keys: arrows/WASD move, Z/K/Space jump (A), X/J/Shift run (B), Enter reset, P pause,
. step while paused, Tab/N next spawn, Esc quit. `--help` lists every flag.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--headless" in args:
        os.environ["SDL_VIDEODRIVER"] = "dummy"     # before pygame initialises video
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    signal.signal(signal.SIGTERM, _interrupt)     # kill = Ctrl-C: the episode being recorded is kept

    from smbwm.data.episode import EpisodeError
    from smbwm.data.spawn import SpawnError
    from smbwm.game.config import PlayError, parse_args
    from smbwm.game.factory import one_line
    from smbwm.utils.config_errors import ConfigError, config_error

    try:
        cfg = parse_args(args)
        from smbwm.game.run import run_headless, run_window
        (run_headless if cfg.headless else run_window)(cfg)
    except (PlayError, SpawnError, EpisodeError) as e:
        try:
            config_error(one_line(e))
        except ConfigError as stop:
            return int(stop.code)
    except KeyboardInterrupt:
        print("interrupted (recordings so far are saved)", file=sys.stderr)
        return 130
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
