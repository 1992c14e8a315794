"""Make spawn points for play: 4 frames + actions, from episodes, DIAMOND_SuperMario spawns or a MarioGPT level.

    python src/dataset.py spawn dataset_files/episodes spawn --count 16 --seed 0
    python src/dataset.py spawn --from diamond_supermario path/to/csgo/spawn spawn/diamond
    python src/dataset.py spawn --from level my_level.txt spawn       # -> spawn/my_level (4 start frames + level.txt)

Each spawn is a folder (format in src/data/spawn.py) named <level>_<episode>_t<start>; emulator
spawns carry the level and the actions from the episode start, so the player can bring the real game
to the same state (data.spawn_tools.replay_to_spawn) for a side-by-side comparison. A level's spawn
has no such replay: the real game cannot play a MarioGPT level.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from smbwm.data.episode import EpisodeError, check_episodes, list_episodes, read_episode
from smbwm.data.spawn import SpawnError, list_spawns, save_spawn
from smbwm.data.spawn_tools import SpawnPickConfig, convert_diamond_spawn, make_spawn, pick_spawns
from smbwm.levels.level import LevelError, load_level


def spawns_from_episodes(src: Path, out: Path, cfg: SpawnPickConfig) -> list[Path]:
    paths = list_episodes(src) if src.is_dir() else [src]
    if not paths:
        raise EpisodeError(f"{src}: no episode files (*.hdf5)")
    check_episodes(paths)                       # every bad file named at once
    picks = pick_spawns(paths, cfg)
    if not picks:
        raise EpisodeError(f"{src}: no episode is long enough for a spawn "
                           f"(need > {cfg.skip_start + 4} steps away from deaths)")
    written = []
    for p, start in tqdm(picks, desc="spawns", unit="spawn", dynamic_ncols=True):
        ep = read_episode(p)
        name = p.relative_to(src).as_posix() if src.is_dir() else p.name
        spawn = make_spawn(ep, start, name, cfg.next_actions)
        level = str(spawn.meta["level"]).replace(":", "-") or "unknown"
        written.append(save_spawn(spawn, out / f"{level}_{p.stem}_t{start:05d}"))
    return written


def spawns_from_diamond(src: Path, out: Path) -> list[Path]:
    # their layout has full_res.npy too, so list_spawns finds the folders
    folders = list_spawns(src)
    if not folders:
        raise SpawnError(f"{src}: no spawn folders (directories with full_res.npy)")
    return [save_spawn(convert_diamond_spawn(f), out / f"diamond_{f.name}") for f in folders]


def spawn_from_level_file(src: Path, out: Path) -> list[Path]:
    from smbwm.envs.level_env import spawn_from_level   # the level simulator, only for this source
    text = load_level(src).text()
    try:
        return [spawn_from_level(text, out / src.stem)]
    except ValueError as e:
        raise ValueError(f"{src}: {e}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python src/dataset.py spawn", description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path, help="episode directory (or file); DIAMOND spawn folder(s) or a level text "
                    "file with --from")
    ap.add_argument("out", type=Path, help="output directory for spawn folders")
    ap.add_argument("--from", dest="fmt", choices=("episodes", "diamond_supermario", "level"), default="episodes")
    ap.add_argument("--count", type=int, default=8, help="number of spawns to pick")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-start", type=int, default=20, help="steps after a reset never picked")
    ap.add_argument("--avoid-death", type=int, default=30, help="steps before a death never picked")
    a = ap.parse_args(argv)
    try:
        if a.count < 1:
            raise ValueError(f"--count must be >= 1, got {a.count}")
        if not a.src.exists():
            raise ValueError(f"{a.src}: no such file or directory")
        if a.fmt == "diamond_supermario":
            written = spawns_from_diamond(a.src, a.out)
        elif a.fmt == "level":
            written = spawn_from_level_file(a.src, a.out)
        else:
            cfg = SpawnPickConfig(count=a.count, seed=a.seed, skip_start=a.skip_start, avoid_death=a.avoid_death)
            written = spawns_from_episodes(a.src, a.out, cfg)
    except (EpisodeError, SpawnError, LevelError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{a.out}: {len(written)} spawn folders written")
    return 0

