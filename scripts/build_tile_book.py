"""Build the tile book of a world-model checkpoint (models.tiles) from real emulator episodes.

Counts the 8x8 cells of the screen grid over every `--every`-th frame of the training episodes and
keeps those seen at least `--min-count` times; and, for each cell of the HUD, which tiles it shows
(models.tiles.hud_table: the HUD snap picks among those only); and, from the episodes' info `time`,
the game's clock (models.hud_clock: where its digits are, what each looks like, steps per tick), which
the HUD snap then runs. `--hud-only` keeps the checkpoint's book and counts its HUD table and clock
alone; `--clock-only` keeps its HUD table too and learns the clock alone. With `--heldout`, it also reports how many cells of
held-out real frames the book holds, and how much of those real frames the snap would change (it
should change almost nothing: what it changes there, it would also change in the dream). The book
goes into the checkpoint folder (tiles.safetensors, `tiles` in model.json), the figures into
tiles_report.json; `sampler.tile_snap` turns the snap on.

    python scripts/build_tile_book.py --data dataset_files/smb/train --heldout dataset_files/smb/heldout_levels
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from smbwm.data.episode import EpisodeError, episode_length, list_episodes, read_episode, read_frames
from smbwm.models.hud_clock import learn_clock, steps_per_tick
from smbwm.models.palette import palette_index
from smbwm.models.motion import HUD_ROWS
from smbwm.models.tiles import TILE, TileBook, cell_hashes, frame_cells, hud_table, ink_masks
from smbwm.models.world_model import FILES, TILES_FILE, WorldModel, add_to_checkpoint, resolve_checkpoint, to_model
from smbwm.utils.checkpoint import CheckpointError


def episode_paths(dirs: list[str]) -> list[Path]:
    paths = [p for d in dirs for p in list_episodes(d)]
    if not paths:
        sys.exit(f"error: no episodes in {', '.join(dirs)} (record some: python src/collect.py, see docs/data.md)")
    return paths


def sampled_frames(path: Path, every: int) -> np.ndarray:
    """Every `every`-th frame of one episode, (T, 240, 256, 3) uint8."""
    return read_frames(path, list(range(0, episode_length(path) + 1, every)))


def frame_indices(frames: np.ndarray) -> np.ndarray:
    """(T, 240, 256, 3) uint8 -> (T, 240, 256) uint8 palette indices."""
    return palette_index(to_model(frames)).numpy().astype(np.uint8)


def episode_times(path: Path) -> np.ndarray | None:
    """The game's clock at every frame of an episode (info `time`), None where the episode has none."""
    t = read_episode(path, frames=False).info.get("time")
    return None if t is None else np.asarray(t, np.int64)


def learn_game_clock(paths: list[Path], hud_cells: int, max_episodes: int = 40):
    """The game's clock (models.hud_clock.ClockSpec) from the HUD glyphs of the frames of at most
    `max_episodes` episodes spread over `paths` (some thousand frames show every digit) and their `time`;
    exits with one line where the episodes cannot show it. Only frames whose step left `time` as it was
    teach a glyph: the screen shows a tick one step after the game's memory."""
    inks, times, all_times = [], [], []
    for p in tqdm(paths[::max(1, len(paths) // max_episodes)], desc="clock", unit="episode"):
        t = episode_times(p)
        if t is None:
            continue
        steady = np.flatnonzero(t[1:] == t[:-1]) + 1
        frames = read_frames(p, steady.tolist())
        inks.append(ink_masks(frame_cells(frame_indices(frames))[:, :hud_cells]))
        times.append(t[steady])
        all_times.append(t)
    try:
        if not inks:
            raise ValueError("no episode has the game's `time` in its info")
        return learn_clock(np.concatenate(inks), np.concatenate(times), steps_per_tick(all_times))
    except ValueError as e:
        sys.exit(f"error: the game's clock: {e}")


def clock_tensors(clock) -> dict:
    return {"clock_cells": torch.as_tensor(clock.cells), "clock_inks": torch.as_tensor(clock.inks.view(np.int64)),
            "clock_steps": torch.tensor([clock.steps])}


def count_cells(paths: list[Path], every: int, hud_cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every distinct cell of the sampled frames (K, 64), how often it was seen (K,), how often each of the
    first `hud_cells` cells of the grid (the HUD's) showed it (hud_cells, K), and the share of episodes
    whose last frame shows another glyph in each HUD cell than their first (hud_cells,)."""
    counts: dict[int, int] = {}
    first: dict[int, np.ndarray] = {}
    at_hud: list[dict[int, int]] = [{} for _ in range(hud_cells)]
    changed = np.zeros(hud_cells, np.int64)
    for p in tqdm(paths, desc="count tiles", unit="episode"):
        grid = frame_cells(frame_indices(sampled_frames(p, every)))                  # (T, N, 64)
        ink = ink_masks(grid[:, :hud_cells])                                          # (T, hud_cells)
        changed += ink[-1] != ink[0]        # first and last frame: a sprite passing over the HUD is no change
        cells = grid.reshape(-1, 64)
        hashes, at, n = np.unique(cell_hashes(cells), return_index=True, return_counts=True)
        for h, i, k in zip(hashes.tolist(), at.tolist(), n.tolist()):
            counts[h] = counts.get(h, 0) + k
            if h not in first:
                first[h] = cells[i]
        for c, column in enumerate(cell_hashes(grid[:, :hud_cells]).T):               # (T,) per HUD cell
            for h, k in zip(*(a.tolist() for a in np.unique(column, return_counts=True))):
                at_hud[c][h] = at_hud[c].get(h, 0) + k
    keys = list(counts)
    slot = {k: i for i, k in enumerate(keys)}
    hud = np.zeros((hud_cells, len(keys)), np.int64)
    for c, seen in enumerate(at_hud):
        for h, k in seen.items():
            hud[c, slot[h]] = k
    return np.stack([first[k] for k in keys]), np.array([counts[k] for k in keys], np.int64), hud, changed / len(paths)


def heldout_figures(book: TileBook, paths: list[Path], every: int, max_diff: int) -> dict:
    """Share of held-out real cells the book holds, and of their pixels and frames the snap (max_diff) changes."""
    known = cells_n = changed_px = frames_n = frames_changed = 0
    for p in tqdm(paths, desc="held-out frames", unit="episode"):
        frames = sampled_frames(p, every)
        cells = frame_cells(frame_indices(frames))
        known += int(book.known(cells).sum())
        cells_n += cells.size // 64
        x = to_model(frames)
        snapped, _ = book.snap(x, max_diff)
        diff = (snapped != x).any(1)                                   # (T, H, W)
        changed_px += int(diff.sum())
        frames_changed += int(diff.any((1, 2)).sum())
        frames_n += len(frames)
    return {"frames": frames_n, "cells_in_book": known / max(cells_n, 1),
            "pixels_changed_by_snap": changed_px / max(frames_n * 240 * 256, 1),
            "frames_changed_by_snap": frames_changed / max(frames_n, 1)}


def shipped_book(folder: Path) -> TileBook:
    """The checkpoint's own tile book (--hud-only keeps its tiles)."""
    try:
        book = WorldModel.load(folder)[0].tiles
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    if book is None:
        sys.exit(f"error: {folder}: no tile book to add a HUD table to (build one without --hud-only)")
    return book


def load_report(folder: Path) -> dict:
    path = folder / TILES_FILE.replace(".safetensors", "_report.json")
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        sys.exit(f"error: {path}: not JSON")


def with_clock(folder: Path, clock, clock_report: dict) -> tuple[TileBook, dict]:
    """--clock-only: the checkpoint's book and HUD table, and the clock."""
    old = shipped_book(folder)
    if not old.hud_table:
        sys.exit(f"error: {folder}: its tile book has no HUD table to run a clock in (build one without --clock-only)")
    return (TileBook(old.tiles, old.counts, old.hud_tiles, old.hud_allowed, getattr(old, "hud_static", None),
                     **clock_tensors(clock)), {**load_report(folder), **clock_report})


def counted_book(args, folder: Path, train: list[Path], heldout: dict, grid: tuple[int, int], clock,
                 clock_report: dict) -> tuple[TileBook, dict]:
    """The book counted on the training episodes (--hud-only: the checkpoint's tiles, the HUD table counted),
    with the clock, and its figures, held-out ones included."""
    tiles, counts, at_hud, changed = count_cells(train, args.every, grid[0] * grid[1])
    shown = at_hud.any(0)
    hud_tiles, allowed = hud_table(tiles[shown], at_hud[:, shown], grid, args.hud_min_count)
    static = (changed <= args.hud_static_share).reshape(grid)
    per_cell = allowed.sum(2)
    hud = {"hud_training_data": args.data, "hud_min_count": args.hud_min_count, "hud_tiles": len(hud_tiles),
           "hud_tiles_per_cell": {"min": int(per_cell.min()), "median": float(np.median(per_cell)),
                                  "max": int(per_cell.max())},
           "hud_static_share": args.hud_static_share, "hud_static_cells": int(static.sum()),
           "hud_static_glyph_cells": int((static & (allowed & (ink_masks(hud_tiles) != 0)).any(2)).sum()),
           **clock_report}
    hud_tensors = (torch.as_tensor(hud_tiles), torch.as_tensor(allowed), torch.as_tensor(static))
    if args.hud_only:
        old = shipped_book(folder)
        book = TileBook(old.tiles, old.counts, *hud_tensors, **clock_tensors(clock))
        report = {**load_report(folder), **hud}
    else:
        keep = counts >= args.min_count
        if not keep.any():
            sys.exit(f"error: no cell is seen {args.min_count} times in {len(train)} episodes: lower --min-count")
        book = TileBook(torch.as_tensor(tiles[keep]), torch.as_tensor(counts[keep]), *hud_tensors,
                        **clock_tensors(clock))
        report = {"training_data": args.data, "every": args.every, "min_count": args.min_count,
                  "tiles": len(book), "distinct_cells_seen": int(len(counts)),
                  "training_cells_in_book": float(counts[keep].sum() / counts.sum()), **hud,
                  "max_diff": args.max_diff}
    held = {d: heldout_figures(book, paths, args.every, args.max_diff) for d, paths in heldout.items()}
    report["heldout"] = {**report.get("heldout", {}), **held}
    return book, report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", required=True, help="folders of training episodes (HDF5)")
    ap.add_argument("--heldout", nargs="*", default=[], help="folders of held-out episodes: coverage figures")
    ap.add_argument("--checkpoint", default=None, help="world-model checkpoint folder (default: the shipped one)")
    ap.add_argument("--out", default=None, help="folder to write into (default: the checkpoint folder)")
    ap.add_argument("--every", type=int, default=5, help="count every n-th frame of each episode")
    ap.add_argument("--min-count", type=int, default=20, help="keep cells seen at least this many times")
    ap.add_argument("--hud-min-count", type=int, default=20,
                    help="a HUD cell may show the tiles it showed at least this many times (and its kind's)")
    ap.add_argument("--hud-static-share", type=float, default=0.02,
                    help="a HUD cell whose glyph changes in at most this share of the episodes keeps its glyph in play")
    ap.add_argument("--hud-only", action="store_true",
                    help="keep the checkpoint's book and (re)count its HUD table and clock alone on --data")
    ap.add_argument("--clock-only", action="store_true",
                    help="keep the checkpoint's book and HUD table and learn the game's clock alone on --data")
    ap.add_argument("--max-diff", type=int, default=16,
                    help="the snap's limit for the held-out figures (the `game` sampler's tile_snap)")
    args = ap.parse_args(argv)
    if (args.every < 1 or args.min_count < 1 or args.hud_min_count < 1 or not 0 <= args.max_diff <= 64
            or not 0 <= args.hud_static_share <= 1):
        sys.exit("error: --every, --min-count and --hud-min-count must be at least 1, --max-diff between 0 and 64, "
                 "--hud-static-share between 0 and 1")
    if args.hud_only and args.clock_only:
        sys.exit("error: --hud-only and --clock-only: give one (--hud-only learns the clock too)")

    folder = resolve_checkpoint(args.checkpoint)
    if not (folder / FILES[2]).exists():
        sys.exit(f"error: {folder}: no world-model checkpoint here (expected {', '.join(FILES)})")
    out = Path(args.out) if args.out else folder
    try:
        train = episode_paths(args.data)
        heldout = {d: episode_paths([d]) for d in args.heldout}
        grid = (HUD_ROWS // TILE, 256 // TILE)
        clock = learn_game_clock(train, grid[0] * grid[1])
        clock_report = {"clock_training_data": args.data, "clock_cells": clock.cells.tolist(),
                        "clock_steps_per_tick": clock.steps}
        book, report = (with_clock(folder, clock, clock_report) if args.clock_only
                        else counted_book(args, folder, train, heldout, grid, clock, clock_report))
    except EpisodeError as e:
        sys.exit(f"error: {e}")
    for k, v in report.items():
        print(f"{k}: {v}")

    try:
        written = add_to_checkpoint(folder, out, TILES_FILE, book.state_dict(), "tiles", {"count": len(book)}, report)
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    print(f"wrote {out / TILES_FILE} ({len(book)} tiles) and {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
