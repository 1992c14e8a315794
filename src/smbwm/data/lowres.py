"""Low-resolution frames (60x64, the denoiser's space) and their per-episode cache.

Low-res is the exact 4x4 area average of the 240x256 frame, computed once per episode and stored
next to the dataset in `<data_dir>/.lowres_60x64/<episode stem>.npy` so that the trainer never resizes
on the fly; beside it `<stem>.scroll.npy` holds the camera scroll between consecutive frames
(models.motion.estimate_scrolls), which needs the full frames and so is computed in the same pass.
A cache entry is rebuilt when its episode file changes (size or mtime differs) or does not read back
as the right arrays (a damaged cache is rebuilt, never trusted). A read-only dataset keeps its cache
elsewhere: `cache_root` (data.cache_dir, python src/dataset.py cache --cache-dir) holds one folder per dataset.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from smbwm.data.episode import EpisodeError, bad_files_message, read_episode
from smbwm.utils.paths import file_stamp

FACTOR = 4
CACHE_DIRNAME = ".lowres_60x64"
LOW_SHAPE = (60, 64, 3)          # one low-res frame: exact 4x4 area average of 240x256x3


class CacheError(EpisodeError):
    """The cache cannot be written where it should live; str() says which option moves it."""


def downsample(frames: np.ndarray) -> np.ndarray:
    """(..., 240, 256, 3) uint8 -> (..., 60, 64, 3) uint8, exact 4x4 area average (rounded)."""
    f = np.asarray(frames)
    h, w, c = f.shape[-3:]
    if h % FACTOR or w % FACTOR:
        raise ValueError(f"frame size {h}x{w} is not a multiple of {FACTOR}")
    x = f.reshape(*f.shape[:-3], h // FACTOR, FACTOR, w // FACTOR, FACTOR, c).astype(np.uint16)
    # exact integer sum of 16 pixels; adding slices is ~10x faster than ndarray.sum over the small axes
    s = sum(x[..., i, :, :, :] for i in range(FACTOR))
    s = sum(s[..., j, :] for j in range(FACTOR))
    return ((s + FACTOR * FACTOR // 2) // (FACTOR * FACTOR)).astype(np.uint8)


def cache_dir(data_dir: str | os.PathLike, cache_root: str | os.PathLike | None = None) -> Path:
    """<data_dir>/.lowres_60x64, or a folder of `cache_root` named after the dataset's absolute path."""
    if not cache_root:
        return Path(data_dir) / CACHE_DIRNAME
    d = Path(data_dir).resolve()
    return Path(cache_root) / f"{d.name}-{hashlib.sha1(str(d).encode()).hexdigest()[:10]}{CACHE_DIRNAME}"


def cache_path(episode_path: Path, data_dir: str | os.PathLike, cache_root: str | os.PathLike | None = None) -> Path:
    rel = Path(episode_path).resolve().relative_to(Path(data_dir).resolve())
    return cache_dir(data_dir, cache_root) / rel.with_suffix(".npy")


def _cached(out: Path, meta: Path, episode_path: Path) -> np.ndarray | None:
    """The cached low-res frames if the entry is fresh and whole (frames and scrolls agree), else None."""
    try:
        if json.loads(meta.read_text()) != file_stamp(episode_path):
            return None
        low = np.load(out, mmap_mode="r", allow_pickle=False)
        scroll = np.load(out.with_suffix(".scroll.npy"), mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if low.dtype != np.uint8 or low.ndim != 4 or low.shape[1:] != LOW_SHAPE or len(low) < 2 \
            or scroll.dtype != np.int8 or scroll.shape != (len(low) - 1,):
        return None
    return low


def load_lowres(episode_path: str | os.PathLike, data_dir: str | os.PathLike, build: bool = True,
                cache_root: str | os.PathLike | None = None) -> np.ndarray:
    """The episode's (T+1, 60, 64, 3) uint8 low-res frames, from the cache (built if missing/stale/damaged)."""
    episode_path = Path(episode_path)
    out = cache_path(episode_path, data_dir, cache_root)
    meta = out.with_suffix(".json")
    low = _cached(out, meta, episode_path) if out.exists() and meta.exists() else None
    if low is not None:
        return low
    if not build:
        raise EpisodeError(f"{episode_path}: no low-res cache entry (run python src/dataset.py cache {data_dir})")
    from smbwm.models.motion import estimate_scrolls  # torch is only needed when building
    frames = read_episode(episode_path).frames
    low = downsample(frames)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for arr, dst in ((estimate_scrolls(frames), out.with_suffix(".scroll.npy")), (low, out)):
            tmp = dst.with_name(dst.name + ".tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, dst)
        meta.write_text(json.dumps(file_stamp(episode_path)))
    except OSError as e:
        raise CacheError(f"cannot write the low-res cache in {cache_dir(data_dir, cache_root)} ({e.strerror or e}): "
                         "give it a writable place with data.cache_dir=<dir> (python src/dataset.py cache --cache-dir <dir>)") from None
    return low


def load_scrolls(episode_path: str | os.PathLike, data_dir: str | os.PathLike,
                 cache_root: str | os.PathLike | None = None) -> np.ndarray:
    """The episode's (T,) int8 camera scrolls from the cache (built together with the low-res frames)."""
    load_lowres(episode_path, data_dir, cache_root=cache_root)
    return np.load(cache_path(Path(episode_path), data_dir, cache_root).with_suffix(".scroll.npy"))


def build_cache(data_dir: str | os.PathLike, episodes: list[Path], progress: bool = True,
                cache_root: str | os.PathLike | None = None) -> list[np.ndarray]:
    """Make sure every episode has a fresh cache entry; returns the low-res arrays (memory-mapped).
    Bad episode files are all named in one EpisodeError (not one per run)."""
    lows, bad = [], []
    for p in tqdm(episodes, desc="low-res cache", unit="episode", disable=not progress, leave=False):
        try:
            lows.append(load_lowres(p, data_dir, cache_root=cache_root))
        except CacheError:
            raise
        except EpisodeError as e:
            bad.append(str(e))
    if bad:
        raise EpisodeError(bad_files_message(bad))
    return lows
