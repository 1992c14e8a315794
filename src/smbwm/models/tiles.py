"""The tile book: every 8x8 patch the real game shows often, and a snap of drawn frames onto it.

The NES draws its background from 8x8 tiles, so a real frame is made of few distinct patches, seen
again and again. The dream's upsampler picks each pixel's colour on its own (models.upsampler), and
over a minute of play a few wrong pixels per cell pile up: bricks lose their mortar and become
streaks, HUD digits garble, walls collect speckle. Each wrong pixel is copied into the next frame's
prior, so the damage only grows.

The book holds the 8x8 cells of the screen grid (columns from x = 0, rows from y = 0) that real frames
show at least `min_count` times, counted over training episodes (`scripts/build_tile_book.py`). The
camera's scroll moves the background tiles across that grid, so a tile is stored at each of the 8
offsets it was seen at; nothing has to track the scroll phase.

A drawn frame is snapped cell by cell: a cell that is in the book stays; a cell that differs from its
nearest book entry in at most `max_diff` of its 64 pixels becomes that entry; a cell farther from
everything (a sprite, something new) stays as drawn, and so does every cell around Mario (whose
pose the book must not choose). The snapped frame is what the player sees and what the next step's
upsampler takes as its prior, so a clean frame stays clean.

The HUD does not scroll, and each of its cells only ever shows a few tiles: a letter of "WORLD", the
coin's "x", a digit or a blank. A book may also hold, per HUD cell, the tiles the game shows there
(`hud_tiles`, `hud_allowed`); the HUD snap then picks among those only, so a faded "x" comes back as "x"
instead of the blank it is nearest to, and a digit cell never turns into a letter. A HUD cell far from
all its tiles stays as drawn only where it holds colours its tiles lack (a sprite passing the HUD); one
drawn in the font's own colours is a garbled glyph and becomes the nearest. A book with a HUD table may
also know the game's clock (models.hud_clock): its cells then show the clock the caller runs.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from smbwm.models.hud_clock import ClockSpec, digit_inks, read_clock
from smbwm.models.mario_sprite import MARIO_WINDOW, mario_centres
from smbwm.models.palette import NES_PALETTE, palette_index, palette_tensor
from smbwm.utils.device import cpu_has_bf16

TILE = 8
CELL = TILE * TILE
MEMO_SIZE = 100_000         # remembered nearest entries (cells seen before) before the memory starts over
MARIO_MARGIN = 4            # px around Mario's 16x16 window that the snap leaves alone
HUD_STRAY_PIXELS = 4        # pixels of a garbled HUD cell that may be in colours its glyph lacks
_PALETTE_RGB = np.array(NES_PALETTE, np.uint8)
_PALETTE_KEYS = (_PALETTE_RGB[:, 0].astype(np.int64) << 16) | (_PALETTE_RGB[:, 1].astype(np.int64) << 8) | _PALETTE_RGB[:, 2]
_SPLITMIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def frame_cells(idx: np.ndarray) -> np.ndarray:
    """(..., H, W) palette indices -> (..., H/8 * W/8, 64) uint8: the screen grid's 8x8 cells, row-major."""
    *lead, h, w = idx.shape
    c = idx.reshape(*lead, h // TILE, TILE, w // TILE, TILE).swapaxes(-3, -2)
    return np.ascontiguousarray(c, np.uint8).reshape(*lead, (h // TILE) * (w // TILE), CELL)


def ink_masks(cells: np.ndarray) -> np.ndarray:
    """(..., 64) palette indices -> (...) uint64, bit i set where pixel i differs from the cell's last pixel
    (the font leaves a glyph's bottom row blank): the glyph apart from its colours, so "W" on the sky and
    "W" on the underground's black are the same glyph."""
    ink = np.asarray(cells) != np.asarray(cells)[..., -1:]
    return np.ascontiguousarray(np.packbits(ink, axis=-1, bitorder="little")).view(np.uint64)[..., 0]


def cell_hashes(cells: np.ndarray) -> np.ndarray:
    """(..., 64) uint8 -> (...) uint64, equal for equal cells (and, but for ~1 in 2^64, only for those).
    Each of a cell's 8 words is folded in through splitmix64's mixer: a plain weighted sum of the words
    is linear, and cells that differ in a regular pattern of pixels then collide."""
    words = np.ascontiguousarray(cells, np.uint8).view(np.uint64)        # (..., 8)
    h = np.zeros(words.shape[:-1], np.uint64)
    with np.errstate(over="ignore"):
        for k in range(words.shape[-1]):
            z = h + words[..., k] + _SPLITMIX[0]
            z = (z ^ (z >> np.uint64(30))) * _SPLITMIX[1]
            z = (z ^ (z >> np.uint64(27))) * _SPLITMIX[2]
            h = z ^ (z >> np.uint64(31))
    return h


class TileBook(nn.Module):
    """tiles (K, 64) palette indices (models.palette), counts (K,) how often real frames show each;
    optionally hud_tiles (M, 64) and hud_allowed (R, C, M) bool: which of them each cell of the HUD's R
    rows and C columns of cells may show (hud_table); and hud_static (R, C) bool: the cells whose glyph
    stays the same within a level (the words, the "x", the world number), which keep the last frame's;
    and clock_cells (3,), clock_inks (10,) (uint64 glyphs stored as int64) and clock_steps (1,): the
    game's clock (models.hud_clock.ClockSpec)."""

    def __init__(self, tiles: torch.Tensor, counts: torch.Tensor, hud_tiles: torch.Tensor | None = None,
                 hud_allowed: torch.Tensor | None = None, hud_static: torch.Tensor | None = None,
                 clock_cells: torch.Tensor | None = None, clock_inks: torch.Tensor | None = None,
                 clock_steps: torch.Tensor | None = None):
        super().__init__()
        if tiles.ndim != 2 or tiles.shape[1] != CELL or counts.shape != tiles.shape[:1] or len(tiles) == 0:
            raise ValueError(f"a tile book needs (K, {CELL}) tiles and (K,) counts, K > 0; "
                             f"got {tuple(tiles.shape)} and {tuple(counts.shape)}")
        if int(tiles.max()) >= len(NES_PALETTE):
            raise ValueError(f"tile book: palette index {int(tiles.max())} >= {len(NES_PALETTE)}")
        self.register_buffer("tiles", tiles.to(torch.uint8))
        self.register_buffer("counts", counts.to(torch.int32))
        if (hud_tiles is None) != (hud_allowed is None):
            raise ValueError("tile book: hud_tiles and hud_allowed come together")
        if hud_tiles is not None:
            if (hud_tiles.ndim != 2 or hud_tiles.shape[1] != CELL or hud_allowed.ndim != 3
                    or hud_allowed.shape[2] != len(hud_tiles) or not hud_allowed.any(2).all()):
                raise ValueError(f"tile book: a HUD table needs (M, {CELL}) tiles and (R, C, M) allowed with "
                                 f"a tile for every cell; got {tuple(hud_tiles.shape)} and {tuple(hud_allowed.shape)}")
            self.register_buffer("hud_tiles", hud_tiles.to(torch.uint8))
            self.register_buffer("hud_allowed", hud_allowed.to(torch.bool))
        if hud_static is not None:
            if hud_tiles is None or tuple(hud_static.shape) != tuple(hud_allowed.shape[:2]):
                raise ValueError(f"tile book: hud_static needs a HUD table and its (R, C) shape; got {tuple(hud_static.shape)}")
            self.register_buffer("hud_static", hud_static.to(torch.bool))
        self.clock: ClockSpec | None = None
        clock = (clock_cells, clock_inks, clock_steps)
        if any(t is not None for t in clock):
            if hud_tiles is None or any(t is None for t in clock):
                raise ValueError("tile book: a clock needs a HUD table and all of clock_cells, clock_inks, clock_steps")
            self.clock = ClockSpec(clock_cells.cpu().numpy(), clock_inks.cpu().numpy(), int(clock_steps.reshape(-1)[0]))
            if self.clock.cells.max() >= hud_allowed.shape[0] * hud_allowed.shape[1]:
                raise ValueError(f"tile book: clock cell {int(self.clock.cells.max())} is outside the HUD")
            self.register_buffer("clock_cells", torch.as_tensor(self.clock.cells))
            self.register_buffer("clock_inks", torch.as_tensor(self.clock.inks.view(np.int64)))
            self.register_buffer("clock_steps", torch.tensor([self.clock.steps], dtype=torch.int64))
        self.hud_table = hud_tiles is not None
        self._index()

    def _index(self) -> None:
        tiles = self.tiles.cpu().numpy()
        self._tiles_np = tiles
        self._sorted = np.sort(cell_hashes(tiles))
        colours = np.unique(tiles)                   # one-hot over the colours the book uses only
        self._colour_slot = np.full(256, -1, np.int64)
        self._colour_slot[colours] = np.arange(len(colours))
        self._n_colours = len(colours)
        # (K, 64*C); multiplied as its transposed view, which the CPU's bf16 kernels run fastest. bf16 and
        # fp32 both hold 0..64 exactly; a CPU without bf16 units emulates bf16 several times slower than fp32
        self._dtype = torch.bfloat16 if cpu_has_bf16() else torch.float32
        self._onehot = torch.as_tensor(self._one_hot(tiles)).to(self._dtype)
        self._memo: dict[int, tuple[int, int]] = {}
        self._tie = torch.log(self.counts.float().cpu()) * 1e-3      # among equally near tiles, the commoner
        if self.hud_table:
            self._hud_np = self.hud_tiles.cpu().numpy()                                      # (M, 64)
            self._hud_ink = ink_masks(self._hud_np)                                          # (M,)
            self._hud_colours = np.zeros((len(self._hud_np), 256), bool)                    # (M, 256) colours it uses
            self._hud_colours[np.arange(len(self._hud_np))[:, None], self._hud_np] = True
            self._hud_allowed_np = self.hud_allowed.cpu().numpy().reshape(-1, len(self._hud_np))   # (R*C, M)
            static = getattr(self, "hud_static", None)
            self._hud_static_np = None if static is None else static.cpu().numpy().reshape(-1)  # (R*C,)

    def __len__(self) -> int:
        return len(self.tiles)

    def read_clock(self, frames: torch.Tensor) -> np.ndarray | None:
        """frames (B,3,240,256) in [-1,1] -> (B,) the value each frame's clock shows (-1: no digits there);
        None if the book does not know the clock."""
        if self.clock is None:
            return None
        rows = self.hud_allowed.shape[0] * TILE
        return read_clock(ink_masks(frame_cells(palette_index(frames[:, :, :rows]).cpu().numpy().astype(np.uint8))),
                          self.clock)

    def _one_hot(self, cells: np.ndarray) -> np.ndarray:
        """(N, 64) -> (N, 64*C) float32; a colour the book never uses matches nothing."""
        slot = self._colour_slot[cells]                                          # (N, 64)
        out = np.zeros((len(cells), CELL, self._n_colours + 1), np.float32)
        np.put_along_axis(out, np.where(slot < 0, self._n_colours, slot)[..., None], 1.0, axis=2)
        return out[..., :self._n_colours].reshape(len(cells), -1)

    def known(self, cells: np.ndarray) -> np.ndarray:
        """(..., 64) -> (...) bool: the cell is in the book exactly."""
        h = cell_hashes(cells)
        pos = np.searchsorted(self._sorted, h).clip(0, len(self._sorted) - 1)
        return self._sorted[pos] == h

    def game_tile_share(self, frames: np.ndarray, hud_rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(T, H, W, 3) uint8 RGB frames -> per frame, the share of the HUD's 8x8 cells (the top
        `hud_rows`) and of the playfield's that are cells the real game shows often (in the book): the
        figure for streaks, dither and speckle, which blur cannot hide (a blend of colours is no
        palette colour, so its cell is never in the book)."""
        frames = np.asarray(frames)
        keys = (frames[..., 0].astype(np.int64) << 16) | (frames[..., 1].astype(np.int64) << 8) | frames[..., 2]
        order = np.argsort(_PALETTE_KEYS)
        pos = np.searchsorted(_PALETTE_KEYS, keys, sorter=order).clip(0, len(order) - 1)
        idx = np.where(_PALETTE_KEYS[order[pos]] == keys, order[pos], 255).astype(np.uint8)   # (T, H, W)
        known = self.known(frame_cells(idx)).reshape(len(frames), frames.shape[1] // TILE, -1)
        rows = hud_rows // TILE
        return known[:, :rows].mean((1, 2)), known[:, rows:].mean((1, 2))

    def nearest(self, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 64) -> the nearest book entry's index (N,) and how many of the 64 pixels differ from it (N,).
        A cell the snap leaves as drawn is copied into the next frames, so answers are remembered."""
        best, diff = np.zeros(len(cells), np.int64), np.zeros(len(cells), np.int64)
        hashes = cell_hashes(cells).tolist()
        if len(self._memo) + len(hashes) > MEMO_SIZE:
            self._memo.clear()
        miss = [i for i, h in enumerate(hashes) if h not in self._memo]
        for start in range(0, len(miss), 4096):           # (n, K) scores in bounded pieces
            part = miss[start:start + 4096]
            # equal pixels = one-hot dot product (bf16 runs on the CPU's matrix units where it has them)
            same = (torch.as_tensor(self._one_hot(cells[part])).to(self._dtype) @ self._onehot.T).float()  # (n, K)
            b = (same + self._tie).argmax(1)
            d = CELL - same.gather(1, b[:, None])[:, 0].round().long()
            for i, bi, di in zip(part, b.tolist(), d.tolist()):
                self._memo[hashes[i]] = (bi, di)
        for i, h in enumerate(hashes):
            best[i], diff[i] = self._memo[h]
        return best, diff

    @torch.no_grad()
    def snap(self, frames: torch.Tensor, max_diff: int, marios: list | None = None,
             rows: int | None = None, last: torch.Tensor | None = None,
             clock: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """frames (B,3,240,256) in [-1,1] -> the snapped frames and, per frame, the share of cells changed.
        Cells around each Mario (models.mario_sprite.mario_centres; `marios` if the caller has them) stay
        as drawn. Where the book has a HUD table, the HUD's cells are snapped onto the tiles each may show.
        `rows`: only the cells of the top `rows` pixel rows (the HUD) are snapped. `last` (B,3,240,256): the
        frames before these; a static HUD cell (hud_static) that showed a glyph there shows it again, in
        the colours nearest the drawing, however far the drawing has wandered. `clock` (B,) the values the
        clock cells show (a book with a clock; models.hud_clock), -1: left to the snap."""
        hud_rows = self.hud_allowed.shape[0] * TILE if self.hud_table and frames.shape[3] == self.hud_allowed.shape[1] * TILE else 0
        if rows:                     # the HUD alone: its rows snapped as a frame of their own
            top = frames[:, :, :rows].contiguous()
            marios = marios if marios is not None else [[] for _ in range(len(frames))]
            top, changed = (self._snap_hud(top, max_diff, marios, last, clock) if rows == hud_rows
                            else self.snap(top, max_diff, marios))
            return torch.cat([top, frames[:, :, rows:]], 2), changed * rows / frames.shape[2]
        idx = palette_index(frames).cpu().numpy().astype(np.uint8)             # (B, H, W)
        cells = frame_cells(idx)                                              # (B, N, 64)
        todo = ~self.known(cells)
        if marios is None:
            marios = mario_centres(_PALETTE_RGB[idx])
        todo &= ~_near_mario(marios, frames.shape[2], frames.shape[3])
        todo[:, :hud_rows // TILE * frames.shape[3] // TILE] = False            # the HUD goes by its table, below
        fi, ci = np.nonzero(todo)
        best, diff = self.nearest(cells[fi, ci])
        ok = diff <= max_diff
        out, changed = _write_cells(frames, fi[ok], ci[ok], self._tiles_np[best[ok]])
        if hud_rows:
            out, in_hud = self.snap(out, max_diff, marios, rows=hud_rows, last=last, clock=clock)
            changed = changed + in_hud
        return out, changed

    def _snap_hud(self, top: torch.Tensor, max_diff: int, marios: list, last: torch.Tensor | None = None,
                  clock: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
        """The HUD rows (B,3,R*8,C*8): each cell onto the nearest tile the game shows in that cell (hud_allowed),
        within max_diff pixels; on ties the commoner tile (the table is ordered by count). A static cell
        whose last frame showed one of its glyphs goes onto that glyph, at any distance; so does a clock
        cell onto its digit of `clock`, and a cell drawn (but for HUD_STRAY_PIXELS) in the colours of one
        of its tiles onto the nearest such tile."""
        cells = frame_cells(palette_index(top).cpu().numpy().astype(np.uint8))   # (B, P, 64)
        same = (cells[:, :, None, :] == self._hud_np[None, None]).sum(-1, dtype=np.int16)
        allowed = np.broadcast_to(self._hud_allowed_np[None], same.shape)       # (B, P, M)
        hold = np.zeros(same.shape[:2], bool)                                   # (B, P)
        if last is not None and self._hud_static_np is not None:
            before = frame_cells(palette_index(last[:, :, :top.shape[2]]).cpu().numpy().astype(np.uint8))
            glyph = allowed & (self._hud_ink[None, None] == ink_masks(before)[..., None])   # the last frame's glyph
            hold = self._hud_static_np[None] & glyph.any(-1)
            allowed = np.where(hold[..., None], glyph, allowed)
        if clock is not None and self.clock is not None:
            running = np.asarray(clock) >= 0
            want = np.zeros(same.shape[:2], np.uint64)
            want[:, self.clock.cells] = digit_inks(clock, self.clock)
            forced = np.zeros(same.shape[:2], bool)
            forced[:, self.clock.cells] = running[:, None]
            glyph = allowed & (self._hud_ink[None, None] == want[..., None])
            forced &= glyph.any(-1)                # a level whose colours the table lacks keeps the snap's choice
            hold = hold | forced
            allowed = np.where(forced[..., None], glyph, allowed)
        same = np.where(allowed, same, -1)
        best = same.argmax(-1)
        diff = CELL - np.take_along_axis(same, best[..., None], -1)[..., 0]
        # a cell far from all its tiles yet drawn in the colours of one of them is a garbled glyph, never a
        # sprite (sprites bring colours the font lacks): left as drawn it would be copied on for good
        fi, ci = np.nonzero((diff > max_diff) & ~hold)
        if len(fi):
            inside = self._hud_colours[:, cells[fi, ci]].sum(-1).T                 # (n, M) pixels in m's colours
            fits = allowed[fi, ci] & (inside >= CELL - HUD_STRAY_PIXELS)
            garbled = fits.any(-1)
            fi, ci = fi[garbled], ci[garbled]
            best[fi, ci] = np.where(fits[garbled], same[fi, ci], -1).argmax(-1)
            hold[fi, ci] = True
        todo = (diff > 0) & ((diff <= max_diff) | hold) & ~_near_mario(marios, top.shape[2], top.shape[3])
        fi, ci = np.nonzero(todo)
        return _write_cells(top, fi, ci, self._hud_np[best[fi, ci]])


def _near_mario(marios: list, h: int, w: int) -> np.ndarray:
    """(B, cells) bool: the grid cells overlapping each frame's Mario windows (plus MARIO_MARGIN)."""
    gh, gw = h // TILE, w // TILE
    near = np.zeros((len(marios), gh * gw), bool)
    cx, cy = np.arange(gw) * TILE, np.arange(gh) * TILE
    reach = MARIO_WINDOW / 2 + MARIO_MARGIN
    for i, found in enumerate(marios):
        for mx, my in found:
            near[i] |= ((cy[:, None] + TILE > my - reach) & (cy[:, None] < my + reach) &
                        (cx[None] + TILE > mx - reach) & (cx[None] < mx + reach)).reshape(-1)
    return near


def _write_cells(frames: torch.Tensor, fi: np.ndarray, ci: np.ndarray, tiles: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """frames (B,3,H,W) with cell ci of frame fi replaced by tiles (n, 64) palette indices; and per frame
    the share of cells replaced."""
    b, _, h, w = frames.shape
    gh, gw = h // TILE, w // TILE
    changed = np.bincount(fi, minlength=b) / (gh * gw)
    if len(fi) == 0:
        return frames, changed
    new = palette_tensor(frames.device)[torch.as_tensor(tiles).long()]                     # (n, 64, 3)
    # write only those cells: frames seen as (B, 3, rows, 8, cols, 8) -> (B, cells, 3, 64)
    out = frames.view(b, 3, gh, TILE, gw, TILE).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, 3, CELL).clone()
    out[torch.as_tensor(fi), torch.as_tensor(ci)] = new.transpose(1, 2).to(out.dtype).to(out.device)
    return out.view(b, gh, gw, 3, TILE, TILE).permute(0, 3, 1, 4, 2, 5).reshape(b, 3, h, w), changed


def hud_table(tiles: np.ndarray, counts: np.ndarray, grid: tuple[int, int],
              min_count: int) -> tuple[np.ndarray, np.ndarray]:
    """What each HUD cell may show, from real frames: tiles (M, 64) the distinct cells the HUD showed and
    counts (P, M) how often each of its P = R*C cells (row-major) showed each -> hud_tiles (M', 64), commonest
    first, and allowed (R, C, M') bool. A cell may show the tiles it showed at least `min_count` times, and
    those of every cell that shares one of its non-uniform tiles (a glyph) with it: digits then go with
    digits, so the world number of a level never trained on is drawn from the clock's digits, while a
    letter's cell keeps its letter. Blank (one-colour) tiles link nothing, and pass to no cell that did not
    show them itself: the clock goes blank between lives, the coin counter's digits never do."""
    tiles, counts = np.asarray(tiles, np.uint8), np.asarray(counts, np.int64)
    if counts.shape != (grid[0] * grid[1], len(tiles)):
        raise ValueError(f"hud_table: counts must be ({grid[0] * grid[1]}, {len(tiles)}), got {counts.shape}")
    seen = counts >= min_count
    seen[np.arange(len(seen)), counts.argmax(1)] = True           # every cell may at least show its commonest
    root = np.arange(len(seen))                                   # union-find over cells sharing a glyph

    def find(a: int) -> int:
        while root[a] != a:
            root[a] = root[root[a]]
            a = root[a]
        return a
    blank = (tiles == tiles[:, :1]).all(1)
    for m in np.flatnonzero(~blank):
        cells = np.flatnonzero(seen[:, m])
        for c in cells[1:]:
            root[find(c)] = find(cells[0])
    groups = np.array([find(c) for c in range(len(seen))])
    allowed = np.zeros_like(seen)
    for g in np.unique(groups):
        allowed[groups == g] = seen[groups == g].any(0)
    allowed[:, blank] = seen[:, blank]
    keep = np.flatnonzero(allowed.any(0))
    keep = keep[np.argsort(-counts[:, keep].sum(0), kind="stable")]
    return tiles[keep], allowed[:, keep].reshape(grid[0], grid[1], len(keep))
