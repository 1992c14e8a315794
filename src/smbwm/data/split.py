"""Train/test split by episode, deterministic from a seed, stored as `<data_dir>/split.json`.

    {"seed": 0, "test_fraction": 0.1, "test_levels": ["1-3"], "train": [relative paths], "test": [...]}

An episode goes to test if its level is one of `test_levels` (hold out whole levels: the model never
sees them) or if a seeded hash of its relative path, read as a number in [0, 1), is below
`test_fraction`. Deciding each episode on its own hash, rather than shuffling or ranking a list, keeps
every old assignment when episodes are added and the split is made again with the same seed, so a test
episode never leaks into training. (Tiny sets: if no episode falls below the threshold, the lowest hash
goes to test anyway; if all do, the highest stays in train.)
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from smbwm.data.episode import EpisodeError, bad_files_message, episode_length, list_episodes, read_episode

SPLIT_FILENAME = "split.json"


class SplitError(ValueError):
    """No usable split file; str() is one line naming it."""


@dataclass
class SplitConfig:
    seed: int = 0
    test_fraction: float = 0.1      # of the episodes not already held out by level
    test_levels: list[str] = field(default_factory=list)


def split_path(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir) / SPLIT_FILENAME


def _unit_hash(seed: int, rel: str) -> float:
    """A number in [0, 1) fixed by the seed and the episode's relative path."""
    return int(hashlib.sha1(f"{seed}:{rel}".encode()).hexdigest()[:13], 16) / 16 ** 13


def episode_level(path: Path) -> str:
    """The level attribute of an episode ('1-1', 'gpt:...'); '' if it has none."""
    return str(read_episode(path, frames=False).attrs.get("level", ""))


def make_split(data_dir: str | os.PathLike, cfg: SplitConfig) -> dict:
    """Assign every committed episode under data_dir to train or test (nothing is written)."""
    if not 0.0 <= cfg.test_fraction < 1.0:
        raise SplitError(f"test_fraction must be in [0, 1), got {cfg.test_fraction}")
    root = Path(data_dir)
    paths = list_episodes(root)
    if not paths:
        raise SplitError(f"{root}: no episode files (*.hdf5) to split")
    bad = []
    for p in paths:                  # a corrupt file is in neither side: all of them named, at once
        try:
            episode_length(p)
        except EpisodeError as e:
            bad.append(str(e))
    if bad:
        raise SplitError(bad_files_message(bad) + "; move or delete them, then split again")
    rel = {p: p.relative_to(root).as_posix() for p in paths}
    held = set(cfg.test_levels)
    by_level = {p for p in paths if held and episode_level(p) in held}
    rest = sorted((p for p in paths if p not in by_level), key=lambda p: _unit_hash(cfg.seed, rel[p]))
    k = sum(_unit_hash(cfg.seed, rel[p]) < cfg.test_fraction for p in rest)
    if cfg.test_fraction > 0 and len(rest) > 1:
        k = min(max(k, 1), len(rest) - 1)
    test = by_level | set(rest[:k])
    return {
        "seed": cfg.seed, "test_fraction": cfg.test_fraction, "test_levels": sorted(held),
        "train": sorted(rel[p] for p in paths if p not in test),
        "test": sorted(rel[p] for p in test),
    }


def write_split(data_dir: str | os.PathLike, split: dict, path: str | os.PathLike | None = None) -> Path:
    out = Path(path) if path else split_path(data_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(split, indent=1))
    os.replace(tmp, out)
    return out


def load_split(data_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> tuple[list[Path], list[Path]]:
    """(train_paths, test_paths) as absolute episode paths, from `<data_dir>/split.json` (or `path`).
    Episodes added to the directory after the split was made are in neither list."""
    root = Path(data_dir)
    f = Path(path) if path else split_path(root)
    if not f.exists():
        raise SplitError(f"{f}: no split file; make one with: python src/dataset.py split {root}")
    try:
        split = json.loads(f.read_text())
        train, test = list(split["train"]), list(split["test"])
    except (ValueError, KeyError, TypeError, OSError) as e:
        raise SplitError(f"{f}: not a split file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    outside = [r for r in train + test if not isinstance(r, str) or not _inside(root, r)]
    if outside:
        raise SplitError(f"{f}: lists {len(outside)} path(s) outside {root}, e.g. {str(outside[0])[:200]!r}; "
                         "a split names episode files relative to its directory")
    missing = [r for r in train + test if not (root / r).exists()]
    if missing:
        raise SplitError(f"{f}: {len(missing)} listed episode(s) are missing under {root}, e.g. {missing[0]}; "
                         "make the split again")
    return [(root / r).resolve() for r in train], [(root / r).resolve() for r in test]


def _inside(root: Path, rel: str) -> bool:
    """A relative path to an episode file that stays under root (no '..', not absolute)."""
    p = Path(rel)
    return bool(rel) and not p.is_absolute() and ".." not in p.parts and p.suffix == ".hdf5"


def has_split(data_dir: str | os.PathLike, path: str | os.PathLike | None = None) -> bool:
    """True when the episodes of `data_dir` are split: a split file was given or `<data_dir>/split.json` exists."""
    return bool(path) or split_path(data_dir).exists()


def episodes_for(data_dir: str | os.PathLike, side: str, path: str | os.PathLike | None = None) -> list[Path]:
    """The one rule for which episodes a tool uses: the `side` ("train" or "test") of the split when
    there is one (`has_split`), else every episode of the directory. SplitError / EpisodeError as above."""
    if side not in ("train", "test"):
        raise ValueError(f"side must be train or test, got {side!r}")
    if has_split(data_dir, path):
        train, test = load_split(data_dir, path)
        return train if side == "train" else test
    return list_episodes(data_dir)
