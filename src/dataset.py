"""Data tools, one command: python src/dataset.py <tool> [flags] (python src/dataset.py <tool> --help)

    python src/dataset.py split DATA_DIR --test-fraction 0.1      # train/test split -> DATA_DIR/split.json
    python src/dataset.py cache DATA_DIR                          # the 60x64 low-res cache
    python src/dataset.py import --from diamond_supermario SRC OUT  # other projects' recordings -> episodes
    python src/dataset.py spawn DATA_DIR spawn --count 16         # spawn points for play

Every tool prints one `error: ...` line (exit status 2) for bad input and a progress bar on long work.
"""
from __future__ import annotations

import importlib
import sys

# tool -> (module in smbwm/datatools/, one line for the overview)
TOOLS = {
    "split": ("split", "train/test split of a directory of episodes, written to DATA_DIR/split.json"),
    "cache": ("cache", "build the 60x64 low-res cache (and camera scrolls) of every episode"),
    "import": ("importer", "import DIAMOND_SuperMario recordings as episodes"),
    "spawn": ("spawn", "make spawn points for play from episodes, DIAMOND spawn folders or a MarioGPT level"),
}


def usage() -> str:
    width = max(map(len, TOOLS))
    lines = [f"  {name:<{width}}  {about}" for name, (_, about) in TOOLS.items()]
    return "usage: python src/dataset.py <tool> [flags]   (<tool> --help for its flags)\n\ntools:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    tool, rest = args[0], args[1:]
    if tool not in TOOLS:
        print(f"error: unknown tool {tool!r}; choose one of {', '.join(TOOLS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"smbwm.datatools.{TOOLS[tool][0]}")
    return module.main(rest)


if __name__ == "__main__":
    sys.exit(main())
