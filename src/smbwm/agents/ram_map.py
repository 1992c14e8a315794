"""The Super Mario Bros RAM locations our agents read (NES RAM, 2 KB), in one place.

Sources: the Data Crystal SMB RAM map and gym-super-mario-bros' own reads. The level's metatile
buffer at 0x0500 holds two 16x13 screens (pages) as a ring over the level: tile (x, row) lives at
0x500 + ((x // 256) % 2) * 208 + row * 16 + (x % 256) // 16, with row 0 at screen y = 16.
"""
from __future__ import annotations

import numpy as np

PLAYER_PAGE, PLAYER_X, PLAYER_Y = 0x006D, 0x0086, 0x00CE
PLAYER_X_SPEED = 0x0057            # signed
PLAYER_FLOAT_STATE = 0x001D        # 0 on ground, 1 jumping, 2 falling, 3 flagpole
PLAYER_VIEWPORT = 0x00B5           # >1 means below the screen (falling into a pit)
ENEMY_DRAWN = 0x000F               # 5 slots
ENEMY_TYPE = 0x0016
ENEMY_PAGE, ENEMY_X, ENEMY_Y = 0x006E, 0x0087, 0x00CF
TILES = 0x0500
COIN_TILES = (0xC2, 0xC3)
N_ROWS = 13


def player_xy(ram: np.ndarray) -> tuple[int, int]:
    """Mario's level x (pixels) and screen y (top of sprite, pixels)."""
    return int(ram[PLAYER_PAGE]) * 256 + int(ram[PLAYER_X]), int(ram[PLAYER_Y])


def on_ground(ram: np.ndarray) -> bool:
    return int(ram[PLAYER_FLOAT_STATE]) == 0


def tile(ram: np.ndarray, x: int, row: int) -> int:
    """Metatile id at level x (pixels) and row 0..12; 0 is empty. Outside the grid counts as empty."""
    if not 0 <= row < N_ROWS or x < 0:
        return 0
    return int(ram[TILES + ((x // 256) % 2) * 208 + row * 16 + (x % 256) // 16])


def solid(ram: np.ndarray, x: int, row: int) -> bool:
    t = tile(ram, x, row)
    return t != 0 and t not in COIN_TILES


def row_of(y: int) -> int:
    return (y - 16) // 16


def enemies(ram: np.ndarray) -> list[tuple[int, int, int]]:
    """(x, y, type) of the enemies currently drawn."""
    out = []
    for i in range(5):
        if ram[ENEMY_DRAWN + i]:
            out.append((int(ram[ENEMY_PAGE + i]) * 256 + int(ram[ENEMY_X + i]), int(ram[ENEMY_Y + i]),
                        int(ram[ENEMY_TYPE + i])))
    return out


# --- additions for feature extractors (Modular Mind policy) -------------------------------------
PLAYER_Y_SPEED = 0x009F            # signed, positive = falling
TIME_DIGITS = (0x07F8, 0x07F9, 0x07FA)


def _signed(b: int) -> int:
    return b - 256 if b > 127 else b


def player_speed(ram: np.ndarray) -> tuple[int, int]:
    """Mario's (x, y) speed as signed RAM values (x: + right, y: + down)."""
    return _signed(int(ram[PLAYER_X_SPEED])), _signed(int(ram[PLAYER_Y_SPEED]))


def float_state(ram: np.ndarray) -> int:
    """0 on ground, 1 jumping, 2 falling, 3 sliding down the flagpole."""
    return int(ram[PLAYER_FLOAT_STATE])


def below_screen(ram: np.ndarray) -> bool:
    """True once Mario has dropped below the screen (he is falling to his death in a pit)."""
    return int(ram[PLAYER_VIEWPORT]) > 1


def time_left(ram: np.ndarray) -> int:
    """The level clock (0..999) from its three BCD-like digits."""
    return int(ram[TIME_DIGITS[0]]) * 100 + int(ram[TIME_DIGITS[1]]) * 10 + int(ram[TIME_DIGITS[2]])
