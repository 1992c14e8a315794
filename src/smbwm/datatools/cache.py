"""Build the low-res (60x64, exact 4x4 area average) cache of every episode in a directory.

    python src/dataset.py cache dataset_files/episodes
    python src/dataset.py cache DATA_DIR --split test      # only the test episodes of DATA_DIR/split.json

Entries live in <DATA_DIR>/.lowres_60x64/ (or under --cache-dir: a read-only dataset) and are rebuilt
only when their episode file changed or the entry is damaged, so re-running is cheap; the trainer then
reads low-res frames without resizing (give it the same data.cache_dir).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tqdm import tqdm

from smbwm.data.episode import EpisodeError, bad_files_message, list_episodes
from smbwm.data.lowres import CacheError, cache_dir, load_lowres
from smbwm.data.split import SplitError, load_split


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
    ap.add_argument("--cache-dir", default=None,
                    help="cache root outside the dataset (a read-only dataset); train with data.cache_dir=<same>")
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
            frames += len(load_lowres(p, data_dir, cache_root=a.cache_dir))
        except CacheError as e:     # nowhere to write: the next episodes would fail the same way
            bar.close()
            print(f"error: {e}", file=sys.stderr)
            return 2
        except EpisodeError as e:   # a corrupt file must not stop the rest of the cache
            bad.append(str(e))
        bar.set_postfix(frames=frames)
    bar.close()
    where = cache_dir(data_dir, a.cache_dir)
    size = sum(f.stat().st_size for f in where.rglob("*.npy")) if where.is_dir() else 0
    print(f"{where}: {len(paths) - len(bad)} episodes, {frames} frames, {size / 1e6:.1f} MB "
          f"({time.time() - t0:.1f} s)")
    if bad:
        print(f"error: {bad_files_message(bad)}", file=sys.stderr)
    return 1 if bad else 0

