"""Build the low-res (60x64, exact 4x4 area average) cache of every episode in a directory.

    python src/dataset.py cache dataset_files/episodes
    python src/dataset.py cache DATA_DIR --split test      # only the test episodes of DATA_DIR/split.json

Entries live in <DATA_DIR>/.lowres_60x64/ and are rebuilt only when their episode file changed, so
re-running is cheap; the trainer then reads low-res frames without resizing.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from data.episode import EpisodeError, list_episodes
from data.lowres import cache_dir, load_lowres
from data.split import SplitError, load_split


def _episodes(data_dir: Path, which: str) -> list[Path]:
    if which == "all":
        return list_episodes(data_dir)
    train, test = load_split(data_dir)
    return train if which == "train" else test


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python src/dataset.py cache", description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir", help="directory of episode files (searched recursively)")
    ap.add_argument("--split", choices=("all", "train", "test"), default="all",
                    help="only the episodes of one side of <data_dir>/split.json")
    a = ap.parse_args(argv)
    data_dir = Path(a.data_dir)
    try:
        paths = _episodes(data_dir, a.split)
    except (EpisodeError, SplitError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not paths:
        print(f"error: {data_dir}: no episode files (*.hdf5)", file=sys.stderr)
        return 2
    t0, frames, bad = time.time(), 0, []
    bar = tqdm(paths, desc="low-res cache", unit="episode", dynamic_ncols=True)
    for p in bar:
        try:
            frames += len(load_lowres(p, data_dir))
        except EpisodeError as e:   # a corrupt file must not stop the rest of the cache
            bad.append(str(e))
        bar.set_postfix(frames=frames)
    bar.close()
    size = sum(f.stat().st_size for f in cache_dir(data_dir).rglob("*.npy"))
    print(f"{cache_dir(data_dir)}: {len(paths) - len(bad)} episodes, {frames} frames, {size / 1e6:.1f} MB "
          f"({time.time() - t0:.1f} s)")
    for line in bad:
        print(f"error: {line}", file=sys.stderr)
    return 1 if bad else 0

