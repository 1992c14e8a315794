"""How far the real game's camera pushes Mario back: the premise of `sampler.camera_follow`.

    python scripts/camera_pushback.py --data dataset_files/smb/train [--detector-episodes 30]

Over the steps where the camera scrolls right, the share where Mario's screen x falls by at least
2, 3, 4, 5 and 8 px: from the game's own RAM (`x_pos - camera_x` in the episode's info) over every
episode, and as the Mario detector the sampler uses sees it (models.mario_sprite.find_mario, the centre
of his sprite) on the first --detector-episodes episodes (it reads their frames).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np
from tqdm import tqdm

from smbwm.data.episode import EpisodeError, list_episodes, read_episode
from smbwm.models.mario_sprite import find_mario

PUSHES = (2, 3, 4, 5, 8)
LEVEL_CHANGE = 64         # px: a camera or Mario jump this large is a new level or a pipe, not a scroll


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="a folder of real emulator episodes")
    ap.add_argument("--detector-episodes", type=int, default=30, help="episodes whose frames the detector reads")
    a = ap.parse_args()
    paths = list_episodes(a.data)
    if not paths:
        print(f"error: {a.data}: no episodes", file=sys.stderr)
        return 2
    ram, seen = [], []
    for i, path in enumerate(tqdm(paths, desc="episodes")):
        try:
            ep = read_episode(path, frames=i < a.detector_episodes)
        except EpisodeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if "camera_x" not in ep.info or "x_pos" not in ep.info:
            continue                          # not an emulator episode
        cam, x = ep.info["camera_x"].astype(int), ep.info["x_pos"].astype(int)
        scroll, screen = np.diff(cam), x - cam
        ok = (scroll > 0) & (scroll < LEVEL_CHANGE) & (np.abs(np.diff(x)) < LEVEL_CHANGE)
        ram.append((screen[:-1] - screen[1:])[ok])
        if i < a.detector_episodes:
            shown, xs, _ = find_mario(ep.frames)
            both = ok & shown[:-1] & shown[1:]
            seen.append((xs[:-1] - xs[1:])[both])
    print("| Mario's screen x, steps where the camera scrolls right | steps | " +
          " | ".join(f"falls >= {p} px" for p in PUSHES) + " |")
    print("|---|---|" + "---|" * len(PUSHES))
    for name, parts in (("the game's RAM (x_pos - camera_x)", ram), ("the Mario detector", seen)):
        push = np.concatenate(parts) if parts else np.zeros(0)
        shares = " | ".join(f"{100 * np.mean(push >= p):.2f} %" if len(push) else "—" for p in PUSHES)
        print(f"| {name} | {len(push)} | {shares} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
