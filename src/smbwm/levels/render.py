"""A quick whole-level PNG (16 px per tile): mario-gpt's tile images, or flat colours without them.

This is an overview picture for `generate_level.py`; the NES-look frames the simulator shows come
from src/envs/level_render.py.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from smbwm.levels.corpus import tiles_dir
from smbwm.levels.level import TILES, Level

TILE = 16
TILE_FILES = {  # mario-gpt's convert_level_to_png mapping
    "-": "smb-background.png", "X": "smb-unpassable.png", "S": "smb-breakable.png",
    "?": "smb-question.png", "Q": "smb-question.png", "o": "smb-coin.png", "E": "smb-enemy.png",
    "<": "smb-tube-top-left.png", ">": "smb-tube-top-right.png", "[": "smb-tube-lower-left.png",
    "]": "smb-tube-lower-right.png", "x": "smb-path.png", "B": "cannon_top.png", "b": "cannon_bottom.png",
}
COLOURS = {  # fallback, close to the NES overworld palette
    "-": (92, 148, 252), "X": (200, 76, 12), "S": (180, 52, 0), "?": (252, 152, 56), "Q": (252, 188, 60),
    "o": (252, 216, 0), "E": (140, 60, 20), "<": (0, 168, 0), ">": (0, 168, 0), "[": (0, 120, 0),
    "]": (0, 120, 0), "B": (40, 40, 40), "b": (80, 80, 80), "x": (252, 252, 252),
}


@lru_cache(maxsize=2)
def tile_images(use_package: bool = True) -> dict[str, np.ndarray]:
    """16x16x3 uint8 per tile; sprites with transparency are composed over the sky tile."""
    out = {ch: np.full((TILE, TILE, 3), COLOURS[ch], np.uint8) for ch in TILES}
    d = tiles_dir() if use_package else None
    if d is None:
        return out
    sky = Image.open(d / TILE_FILES["-"]).convert("RGBA").resize((TILE, TILE))
    for ch, name in TILE_FILES.items():
        path = Path(d) / name
        if path.exists():
            im = Image.open(path).convert("RGBA").resize((TILE, TILE), Image.NEAREST)
            out[ch] = np.asarray(Image.alpha_composite(sky, im).convert("RGB"))
    return out


def level_image(level: Level, use_package: bool = True) -> np.ndarray:
    """(14*16, width*16, 3) uint8 RGB picture of the whole level."""
    tiles = tile_images(use_package)
    grid = np.array([list(r) for r in level.rows])
    img = np.empty((level.height * TILE, level.width * TILE, 3), np.uint8)
    for ch, pix in tiles.items():
        ys, xs = np.nonzero(grid == ch)
        for y, x in zip(ys, xs):
            img[y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE] = pix
    return img


def save_level_png(level: Level, path: str | Path, use_package: bool = True) -> Path:
    path = Path(path)
    Image.fromarray(level_image(level, use_package)).save(path)
    return path
