"""Split a directory of episodes into train and test, deterministically, and write <DATA_DIR>/split.json.

    python src/dataset.py split dataset_files/episodes                      # 10% of episodes, seed 0
    python src/dataset.py split DATA_DIR --seed 3 --test-fraction 0.2
    python src/dataset.py split DATA_DIR --test-levels 1-3,4-1 --test-fraction 0   # hold out whole levels

The trainer and evaluator read it with `data.split.load_split(DATA_DIR)`.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from smbwm.data.episode import EpisodeError
from smbwm.data.split import SplitConfig, SplitError, episode_level, make_split, write_split
from smbwm.stages import expand_stages


def parse_levels(spec: str) -> list[str]:
    """'1-3,4-1' / 'world2' / 'gpt:abc123' (MarioGPT levels pass through) -> list of level names."""
    out: list[str] = []
    for tok in (t.strip() for t in spec.split(",")):
        if tok:
            out.extend([tok] if tok.startswith("gpt:") else expand_stages(tok))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python src/dataset.py split", description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", help="directory of episode files (searched recursively)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-fraction", type=float, default=0.1, help="share of the other episodes put in test")
    ap.add_argument("--test-levels", default="", help="levels held out entirely, e.g. 1-3,4-1 or world8")
    ap.add_argument("--out", default=None, help="split file (default <data_dir>/split.json)")
    a = ap.parse_args(argv)
    try:
        cfg = SplitConfig(seed=a.seed, test_fraction=a.test_fraction, test_levels=parse_levels(a.test_levels))
        split = make_split(a.data_dir, cfg)
        out = write_split(a.data_dir, split, a.out)
    except (SplitError, EpisodeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.test_levels:
        seen = Counter(episode_level(Path(a.data_dir) / r) for r in split["test"])
        absent = [lv for lv in cfg.test_levels if not seen[lv]]
        if absent:
            print(f"note: no episodes of held-out level(s) {', '.join(absent)}", file=sys.stderr)
    print(f"{out}: {len(split['train'])} train / {len(split['test'])} test episodes (seed {cfg.seed})")
    return 0

