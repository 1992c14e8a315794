"""NES-look renderer for MarioGPT levels: tiles decoded from the SMB ROM's CHR data.

The 8x8 patterns come from the cartridge nes-py ships (gym_super_mario_bros/_roms), the metatile
layouts and palettes from the game's own tables (Palette*_MTiles, GroundPaletteData), and the RGB
values from nes-py's palette, so a rendered frame uses exactly the pixels the emulator shows.
Layout is the emulator's: level row r covers screen y 16+16r .. 32+16r (14 rows = 224 px under a
16 px band), the HUD text sits on rows y 16..32 over the sky, as in the real game.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

TILE = 16
HUD_BAND = 16
FRAME_H, FRAME_W = 240, 256

# nes-py's 64-colour NES palette (read out of lib_nes_env), 0xRRGGBB.
_NES_RGB = [
    0x7C7C7C, 0x0000FC, 0x0000BC, 0x4428BC, 0x940084, 0xA80020, 0xA81000, 0x881400, 0x503000, 0x007800,
    0x006800, 0x005800, 0x004058, 0x000000, 0x000000, 0x000000, 0xBCBCBC, 0x0078F8, 0x0058F8, 0x6844FC,
    0xD800CC, 0xE40058, 0xF83800, 0xE45C10, 0xAC7C00, 0x00B800, 0x00A800, 0x00A844, 0x008888, 0x000000,
    0x000000, 0x000000, 0xF8F8F8, 0x3CBCFC, 0x6888FC, 0x9878F8, 0xF878F8, 0xF85898, 0xF87858, 0xFCA044,
    0xF8B800, 0xB8F818, 0x58D854, 0x58F898, 0x00E8D8, 0x787878, 0x000000, 0x000000, 0xFCFCFC, 0xA4E4FC,
    0xB8B8F8, 0xD8B8F8, 0xF8B8F8, 0xF8A4C0, 0xF0D0B0, 0xFCE0A8, 0xF8D878, 0xD8F878, 0xB8F8B8, 0xB8F8D8,
    0x00FCFC, 0xF8D8F8, 0x000000, 0x000000,
]
NES_PALETTE = np.array([[(c >> 16) & 255, (c >> 8) & 255, c & 255] for c in _NES_RGB], np.uint8)
SKY = 0x22
# Overworld palettes (GroundPaletteData); entry 0 of each is the sky.
BG_PALETTES = [(SKY, 0x29, 0x1A, 0x0F), (SKY, 0x36, 0x17, 0x0F), (SKY, 0x30, 0x21, 0x0F), (SKY, 0x27, 0x17, 0x0F)]
SPR_PALETTES = [(SKY, 0x16, 0x27, 0x18), (SKY, 0x1A, 0x30, 0x27), (SKY, 0x16, 0x30, 0x27), (SKY, 0x0F, 0x36, 0x17)]

# Metatiles: (top-left, bottom-left, top-right, bottom-right) BG tile numbers, palette.
METATILES: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "ground": ((0xB4, 0xB6, 0xB5, 0xB7), 1),
    "block": ((0xAB, 0xAC, 0xAD, 0xAE), 1),      # 3-d solid block (stairs)
    "S": ((0x45, 0x47, 0x45, 0x47), 1),          # brick with line
    "?": ((0x53, 0x55, 0x54, 0x56), 3),
    "Q": ((0x53, 0x55, 0x54, 0x56), 3),
    "U": ((0x57, 0x59, 0x58, 0x5A), 3),          # emptied block after a bump
    "o": ((0xA5, 0xA7, 0xA6, 0xA8), 3),
    "<": ((0x60, 0x64, 0x61, 0x65), 0),
    ">": ((0x62, 0x66, 0x63, 0x67), 0),
    "[": ((0x68, 0x68, 0x69, 0x69), 0),
    "]": ((0x26, 0x26, 0x6A, 0x6A), 0),
    "B": ((0xCA, 0xCC, 0xCB, 0xCD), 1),          # bullet bill cannon top
    "b": ((0x2A, 0x2A, 0x40, 0x40), 1),          # cannon bottom
    "pole_top": ((0x24, 0x2F, 0x24, 0x3D), 0),
    "pole": ((0xA2, 0xA2, 0xA3, 0xA3), 0),
}
# Overworld scenery behind the level, one period of 48 columns exactly as World 1-1 draws it
# (classified cell by cell from real emulator frames): bushes ( = ), hills / : ^ \\ ; _, clouds.
SCENERY_ROWS = (
    "................................................",
    "...................<~>..............<~~>........",
    "........<~>........[-].....<~~~>....[--]........",
    "........[-]................[---]................",
    "................................................",
    "................................................",
    "................................................",
    "................................................",
    "................................................",
    "..^.............................................",
    "./:\\.............^..............................",
    "/:_;\\......(===)/:\\....(=)...............(==)...",
)
SCENERY_TILES: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "(": ((0x24, 0x24, 0x24, 0x35), 0), "=": ((0x36, 0x25, 0x37, 0x25), 0), ")": ((0x24, 0x38, 0x24, 0x24), 0),
    "/": ((0x24, 0x30, 0x30, 0x26), 0), ":": ((0x26, 0x26, 0x34, 0x26), 0), "^": ((0x24, 0x31, 0x24, 0x32), 0),
    "\\": ((0x33, 0x26, 0x24, 0x33), 0), ";": ((0x34, 0x26, 0x26, 0x26), 0), "_": ((0x26, 0x26, 0x26, 0x26), 0),
    "<": ((0x24, 0x24, 0x24, 0x35), 2), "~": ((0x36, 0x25, 0x37, 0x25), 2), ">": ((0x24, 0x38, 0x24, 0x24), 2),
    "[": ((0x24, 0x24, 0x39, 0x24), 2), "-": ((0x3A, 0x24, 0x3B, 0x24), 2), "]": ((0x3C, 0x24, 0x24, 0x24), 2),
}
METATILES.update({f"scenery{k}": v for k, v in SCENERY_TILES.items()})
# Sprites: rows of (left, right) sprite tiles; a negative number means "mirror the tile".
MARIO_FRAMES = {
    "stand": ((0x3A, 0x37), (0x4F, -0x4F)), "walk1": ((0x32, 0x33), (0x34, 0x35)),
    "walk2": ((0x36, 0x37), (0x38, 0x39)), "walk3": ((0x3A, 0x37), (0x3B, 0x3C)),
    "skid": ((0x3D, 0x3E), (0x3F, 0x40)), "jump": ((0x32, 0x41), (0x42, 0x43)),
    "dead": ((0x9E, -0x9E), (0x9F, -0x9F)),
}
GOOMBA_FRAMES = {"walk": ((0x70, 0x71), (0x72, 0x73)), "flat": ((0xEF, -0xEF),)}
HUD_TEXT_ROWS = (16, 24)


class RenderError(RuntimeError):
    """The SMB ROM (for tile graphics) is missing or unreadable."""


def rom_path() -> Path:
    spec = importlib.util.find_spec("gym_super_mario_bros")
    if spec is None or not spec.submodule_search_locations:
        raise RenderError("gym-super-mario-bros is not installed (its ROM provides the tile graphics)")
    p = Path(list(spec.submodule_search_locations)[0]) / "_roms" / "super-mario-bros.nes"
    if not p.exists():
        raise RenderError(f"{p} is missing: reinstall gym-super-mario-bros")
    return p


@lru_cache(maxsize=1)
def chr_tiles() -> np.ndarray:
    """(512, 8, 8) colour indices 0..3: 0..255 sprite patterns, 256..511 background patterns."""
    rom = rom_path().read_bytes()
    if rom[:4] != b"NES\x1a" or len(rom) < 16 + 32768 + 8192:
        raise RenderError(f"{rom_path()}: not the SMB iNES ROM")
    chr_ = np.frombuffer(rom[16 + 32768:16 + 32768 + 8192], np.uint8).reshape(512, 16)
    lo = np.unpackbits(chr_[:, :8], axis=1).reshape(512, 8, 8)
    hi = np.unpackbits(chr_[:, 8:], axis=1).reshape(512, 8, 8)
    return lo + 2 * hi


def _paint(idx: np.ndarray, palette: tuple[int, int, int, int]) -> np.ndarray:
    return NES_PALETTE[np.array(palette)[idx]]


@lru_cache(maxsize=None)
def metatile(name: str) -> np.ndarray:
    """(16, 16, 3) RGB image of a background metatile."""
    (tl, bl, tr, br), pal = METATILES[name]
    t = chr_tiles()
    idx = np.block([[t[256 + tl], t[256 + tr]], [t[256 + bl], t[256 + br]]])
    return _paint(idx, BG_PALETTES[pal])


@dataclass(frozen=True)
class Sprite:
    rgb: np.ndarray     # (h, 16, 3)
    mask: np.ndarray    # (h, 16) bool: opaque pixels


@lru_cache(maxsize=None)
def sprite(kind: str, frame: str, flip: bool = False) -> Sprite:
    rows, pal = (MARIO_FRAMES[frame], 0) if kind == "mario" else (GOOMBA_FRAMES[frame], 3)
    t = chr_tiles()
    def tile(n: int) -> np.ndarray:
        return t[-n][:, ::-1] if n < 0 else t[n]
    idx = np.vstack([np.hstack([tile(a), tile(b)]) for a, b in rows])
    if flip:
        idx = idx[:, ::-1]
    return Sprite(_paint(idx, SPR_PALETTES[pal]), idx > 0)


def _text_tile(ch: str) -> int:
    if ch in "-x*":
        return {"-": 0x28, "x": 0x29, "*": 0x2E}[ch]
    if ch.isdigit():
        return int(ch)
    if ch.isalpha():
        return 0x0A + ord(ch.upper()) - ord("A")
    return 0x24


def draw_text(frame: np.ndarray, x: int, y: int, text: str) -> None:
    """HUD font (BG tiles 0..0x29) in white; '*' is the coin icon."""
    t = chr_tiles()
    for i, ch in enumerate(text):
        n = _text_tile(ch)
        if n == 0x24:
            continue
        pal = BG_PALETTES[3] if ch == "*" else (SKY, 0x30, 0x30, 0x30)
        idx = t[256 + n]
        cell = frame[y:y + 8, x + 8 * i:x + 8 * i + 8]
        m = idx > 0
        cell[m] = _paint(idx, pal)[m]


def tile_name(ch: str, row: int, height: int) -> str | None:
    """The metatile drawn for a level character (None: sky). Ground in the two bottom rows, stair
    blocks above them, as SMB draws them; enemies and path markers are drawn over sky."""
    if ch == "X":
        return "ground" if row >= height - 2 else "block"
    return ch if ch in METATILES else None


class LevelRenderer:
    """Keeps the level's background as one wide RGB strip and redraws only changed tiles."""

    def __init__(self, grid: np.ndarray, pole_col: int | None = None):
        self.height, self.width = grid.shape
        self.strip = np.empty((self.height * TILE, self.width * TILE, 3), np.uint8)
        self.strip[:] = NES_PALETTE[SKY]
        self.drawn = np.zeros_like(grid)      # nothing drawn yet: every tile differs
        self.pole_col = pole_col
        self._draw_changed(grid, 0, self.width)
        if pole_col is not None:
            self._draw_pole(grid, pole_col)

    def _draw_tile(self, r: int, c: int, ch: str) -> None:
        name = tile_name(ch, r, self.height)
        if name is None and r < len(SCENERY_ROWS) and SCENERY_ROWS[r][c % 48] != ".":
            name = "scenery" + SCENERY_ROWS[r][c % 48]
        cell = self.strip[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE]
        cell[:] = metatile(name) if name else NES_PALETTE[SKY]

    def _draw_changed(self, grid: np.ndarray, c0: int, c1: int) -> None:
        rr, cc = np.nonzero(grid[:, c0:c1] != self.drawn[:, c0:c1])
        for r, c in zip(rr.tolist(), (cc + c0).tolist()):
            self._draw_tile(r, c, chr(grid[r, c]))
            self.drawn[r, c] = grid[r, c]

    def _draw_pole(self, grid: np.ndarray, c: int) -> None:
        solid = [r for r in range(self.height) if tile_name(chr(grid[r, c]), r, self.height)]
        base = solid[0] if solid else self.height
        for r in range(1, base):
            self.strip[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] = metatile("pole_top" if r == 1 else "pole")

    def frame(self, grid: np.ndarray, camera_x: int, sprites: list[tuple[Sprite, int, int]],
              hud: dict[str, int | str], bumps: list[tuple[int, int, int]] = ()) -> np.ndarray:
        """The 240x256 frame: background window at camera_x, sprites at level (x, y), the HUD.
        `bumps` (row, col, frames left of 8) lift blocks hit from below, as the game does."""
        camera_x = int(camera_x)
        c0, c1 = camera_x // TILE, min(self.width, camera_x // TILE + FRAME_W // TILE + 2)
        self._draw_changed(grid, c0, c1)
        out = np.empty((FRAME_H, FRAME_W, 3), np.uint8)
        out[:HUD_BAND] = NES_PALETTE[SKY]
        view = self.strip[:, camera_x:camera_x + FRAME_W]
        out[HUD_BAND:, :view.shape[1]] = view
        out[HUD_BAND:, view.shape[1]:] = NES_PALETTE[SKY]
        for r, c, left in bumps:
            x, y = c * TILE - camera_x, HUD_BAND + r * TILE
            if -TILE < x < FRAME_W:
                lift = min(left, 8 - left)
                block = np.full((TILE + lift, TILE, 3), NES_PALETTE[SKY], np.uint8)
                block[:TILE] = self.strip[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE]
                y0, x0, x1 = max(y - lift, HUD_BAND), max(x, 0), min(x + TILE, FRAME_W)
                out[y0:y + TILE, x0:x1] = block[y0 - (y - lift):, x0 - x:x1 - x]
        for spr, x, y in sprites:
            # +1: the NES draws a sprite one line below its OAM y, so Mario's feet overlap the ground
            self._blit(out, spr, int(x) - camera_x, int(y) + HUD_BAND + 1)
        self._hud(out, hud)
        return out

    @staticmethod
    def _blit(out: np.ndarray, spr: Sprite, x: int, y: int) -> None:
        h, w = spr.mask.shape
        x0, y0, x1, y1 = max(x, 0), max(y, HUD_BAND), min(x + w, FRAME_W), min(y + h, FRAME_H)
        if x0 >= x1 or y0 >= y1:
            return
        m = spr.mask[y0 - y:y1 - y, x0 - x:x1 - x]
        out[y0:y1, x0:x1][m] = spr.rgb[y0 - y:y1 - y, x0 - x:x1 - x][m]

    @staticmethod
    def _hud(out: np.ndarray, hud: dict[str, int | str]) -> None:
        y0, y1 = HUD_TEXT_ROWS
        draw_text(out, 24, y0, "MARIO")
        draw_text(out, 144, y0, "WORLD")
        draw_text(out, 200, y0, "TIME")
        draw_text(out, 24, y1, f"{int(hud.get('score', 0)) % 1_000_000:06d}")
        draw_text(out, 88, y1, f"*x{int(hud.get('coins', 0)) % 100:02d}")
        draw_text(out, 152, y1, str(hud.get("world", "1-1"))[:3])
        draw_text(out, 208, y1, f"{max(0, int(hud.get('time', 0))):3d}")
