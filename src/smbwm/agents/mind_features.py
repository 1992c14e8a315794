"""Game-state features for the Modular Mind policy: one compact vector from any environment.

Every source (the emulator's RAM, the MarioGPT level simulator) is first turned into a `GameState`
(Mario's position and speed, a solid-tile lookup, the enemies, the clock); `features_from_state`
is the only place that turns a state into numbers, so one policy plays every environment.
Numpy only: collecting with the policy needs no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from smbwm.agents import ram_map as R

GRID_COLS = tuple(range(-1, 7))        # tiles relative to Mario's column: one behind, six ahead
GRID_ROWS = tuple(range(-4, 3))        # rows relative to Mario's body row: four above, two below
GAP_COLS = tuple(range(0, 7))
N_ENEMIES = 3                          # nearest enemies kept (of the NES's 5 slots)

# Named slices of the feature vector: specialists read groups, not raw indices.
GROUP_SIZES = {
    "motion": 8,
    "terrain": len(GRID_COLS) * len(GRID_ROWS),
    "gaps": len(GAP_COLS),
    "obstacle": 4,
    "enemies": 3 * N_ENEMIES + 1,
}


def _slices(sizes: dict[str, int]) -> dict[str, slice]:
    out, i = {}, 0
    for k, n in sizes.items():
        out[k] = slice(i, i + n)
        i += n
    return out


GROUPS = _slices(GROUP_SIZES)
N_STATE_FEATURES = sum(GROUP_SIZES.values())


@dataclass
class GameState:
    """What the policy needs to know about one moment of play, independent of the environment."""
    x: int                                         # Mario's level x (pixels, left edge)
    y: int                                         # Mario's screen y (pixels, top of the sprite)
    vx: float = 0.0                                # signed RAM units (about 16 per pixel/frame)
    vy: float = 0.0                                # signed, + is down
    float_state: int = 0                           # 0 ground, 1 jumping, 2 falling, 3 flagpole
    solid: Callable[[int, int], bool] = lambda x, row: False   # (level x px, row 0..12) -> solid tile
    enemies: list[tuple[int, int]] = field(default_factory=list)  # (level x, screen y) of live enemies
    time_left: int = 400
    below_screen: bool = False


def state_from_ram(ram: np.ndarray) -> GameState:
    x, y = R.player_xy(ram)
    vx, vy = R.player_speed(ram)
    return GameState(x=x, y=y, vx=vx, vy=vy, float_state=R.float_state(ram),
                     solid=lambda cx, row: R.solid(ram, cx, row),
                     enemies=[(ex, ey) for ex, ey, _ in R.enemies(ram)], time_left=R.time_left(ram),
                     below_screen=R.below_screen(ram))


def features_from_ram(ram: np.ndarray) -> np.ndarray:
    """(N_STATE_FEATURES,) float32 from the 2 KB NES RAM."""
    ram = np.asarray(ram)
    if ram.shape != (2048,):
        raise ValueError(f"expected the 2048-byte NES RAM, got an array of shape {ram.shape}")
    return features_from_state(state_from_ram(ram))


LEVEL_ROW_OFFSET = 2     # LevelEnv row r (14 rows, ground at 13) is the NES buffer's row r - 2 (ground at 11)
LEVEL_Y_OFFSET = 16 * LEVEL_ROW_OFFSET - 16   # level y (row r at 16r) -> NES screen y (row 0 at 16)


def state_from_level(ls: Any) -> GameState:
    """The same GameState from the MarioGPT level simulator (envs.level_physics.LevelState, read by
    attribute so this module does not import the simulator): level pixels -> the NES conventions
    above, so Mario standing on a level's ground sees the ground where he sees it on the emulator."""
    try:
        m = ls.mario
        mx, my, vx, vy, on_ground = float(m.x), float(m.y), float(m.vx), float(m.vy), bool(m.on_ground)
    except AttributeError as e:
        raise ValueError(f"{type(ls).__name__} is not a level simulator state ({e})") from None
    return GameState(
        x=int(mx), y=int(my) - LEVEL_Y_OFFSET,
        vx=vx * 16.0,                                  # RAM x speed is 1/16 px per frame
        vy=vy, float_state=0 if on_ground else (1 if vy < 0 else 2),
        # the NES ground is two tiles thick, a MarioGPT level's one: its bottom row counts twice
        solid=lambda x, row: x >= 0 and bool(ls.solid(min(row + LEVEL_ROW_OFFSET, 13), int(x) // 16)),
        enemies=[(int(e[0]), int(e[1]) - LEVEL_Y_OFFSET) for e in ls.enemies if int(e[4]) == 1],
        time_left=int(ls.time), below_screen=my > 14 * 16)


def _column_has_floor(s: GameState, cx: int, from_row: int) -> bool:
    return any(s.solid(cx, r) for r in range(max(from_row, 0), R.N_ROWS))


def features_from_state(s: GameState) -> np.ndarray:
    f = np.zeros(N_STATE_FEATURES, dtype=np.float32)
    body = R.row_of(s.y + 8)
    cx0 = s.x + 8                                   # Mario's centre column
    fs = s.float_state
    f[GROUPS["motion"]] = (np.clip(s.vx / 40.0, -1.5, 1.5), np.clip(s.vy / 5.0, -1.5, 1.5),
                           np.clip(s.y / 240.0, -1, 2), fs == 0, fs == 1, fs == 2, s.below_screen,
                           min(s.time_left, 400) / 400.0)
    grid = [s.solid(cx0 + 16 * c, body + r) for c in GRID_COLS for r in GRID_ROWS]
    f[GROUPS["terrain"]] = grid
    gaps = [not _column_has_floor(s, cx0 + 16 * c, body + 1) for c in GAP_COLS]
    f[GROUPS["gaps"]] = gaps
    # Hand-made summaries of the grid: how far the next wall / pit is and how big (REINFORCE learns
    # "jump when it is close" much sooner from one number than from a 56-cell picture).
    wall_c = next((c for c in range(1, 7) if s.solid(cx0 + 16 * c, body) or s.solid(cx0 + 16 * c, body - 1)), None)
    height = 0
    if wall_c is not None:
        while height < 6 and s.solid(cx0 + 16 * wall_c, body - height):
            height += 1
    gap_c = next((c for c in range(1, 7) if gaps[c]), None)
    width = 0
    if gap_c is not None:
        while gap_c + width < 7 and gaps[gap_c + width]:
            width += 1
    f[GROUPS["obstacle"]] = ((wall_c or 7) / 7.0, height / 4.0, (gap_c or 7) / 7.0, width / 4.0)
    near = sorted(((ex - s.x, ey - s.y) for ex, ey in s.enemies), key=lambda d: abs(d[0]))[:N_ENEMIES]
    e = np.zeros(3 * N_ENEMIES + 1, dtype=np.float32)
    for i, (dx, dy) in enumerate(near):
        e[3 * i:3 * i + 3] = (1.0, np.clip(dx / 128.0, -2, 2), np.clip(dy / 64.0, -2, 2))
    e[-1] = any(0 < dx < 56 and abs(dy) < 40 for dx, dy in near)
    f[GROUPS["enemies"]] = e
    return f
