"""MarioGPT's level representation: 14 rows of ASCII tiles, row 0 at the top.

MarioGPT feeds a level to its language model column by column, each column read bottom to
top (its dataset flips and transposes the row strings); `to_columns`/`from_columns` convert
between that token order and rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEIGHT = 14  # 14 rows x 16 px = 224 px of playfield; the NES frame adds a 16 px HUD band

# Every tile of the SMB levels in mario-gpt's corpus (FULL_LEVEL_STR_WITH_PATHS uses exactly
# these 14). mario-gpt's tokenizer/renderer also know 'Y' (its mask/padding filler), 'N' and
# 'F' (tiles of other games' sheets); none occurs in an SMB level, so they are rejected here
# rather than silently passed to the simulator.
TILES: dict[str, str] = {
    "-": "sky",
    "X": "ground",
    "S": "brick",
    "?": "question block",
    "Q": "question block (used/hidden)",
    "o": "coin",
    "E": "enemy",
    "<": "pipe top-left",
    ">": "pipe top-right",
    "[": "pipe body-left",
    "]": "pipe body-right",
    "B": "cannon top",
    "b": "cannon body",
    "x": "path marker",
}
SOLID = frozenset("XS?Q<>[]Bb")  # tiles Mario collides with
NOT_SMB = {"Y": "mario-gpt's mask/padding filler", "N": "a tile of another game", "F": "a tile of another game"}


class LevelError(ValueError):
    """A level text that is not a valid MarioGPT level; the message is one line."""


@dataclass(frozen=True)
class Level:
    rows: list[str]  # HEIGHT strings of equal length; rows[0] is the top row

    @property
    def width(self) -> int:
        return len(self.rows[0])

    @property
    def height(self) -> int:
        return len(self.rows)

    def tile(self, x_col: int, row: int) -> str:
        """Tile at column x_col (0 = left) and row (0 = top); outside the level is sky."""
        if 0 <= row < HEIGHT and 0 <= x_col < self.width:
            return self.rows[row][x_col]
        return "-"

    def column(self, x_col: int) -> str:
        """Column x_col, top to bottom."""
        return "".join(r[x_col] for r in self.rows)

    def window(self, start: int, width: int) -> Level:
        """Columns [start, start+width) clipped to the level (never empty)."""
        start = max(0, min(start, self.width - 1))
        end = max(start + 1, min(start + width, self.width))
        return Level([r[start:end] for r in self.rows])

    def to_columns(self) -> list[str]:
        """MarioGPT token order: one string per column, read bottom to top."""
        return ["".join(r[x] for r in reversed(self.rows)) for x in range(self.width)]

    @classmethod
    def from_columns(cls, columns: list[str]) -> Level:
        """Inverse of to_columns (columns bottom to top); validates the result."""
        if not columns:
            raise LevelError("level has no columns")
        bad = [i for i, c in enumerate(columns) if len(c) != HEIGHT]
        if bad:
            raise LevelError(f"column {bad[0]} has {len(columns[bad[0]])} tiles, expected {HEIGHT}")
        return parse_level("\n".join("".join(c[HEIGHT - 1 - r] for c in columns) for r in range(HEIGHT)))

    def text(self) -> str:
        return "\n".join(self.rows) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(self.text())
        return path

    def __str__(self) -> str:
        return self.text()


def parse_level(text: str, source: str = "level") -> Level:
    """Validate `text` (14 lines of tiles; a trailing newline and \\r are fine) into a Level."""
    rows = [r.rstrip("\r") for r in text.strip("\n").split("\n")]
    if len(rows) != HEIGHT:
        raise LevelError(f"{source}: has {len(rows)} rows, expected {HEIGHT}")
    width = len(rows[0])
    if width == 0:
        raise LevelError(f"{source}: row 0 is empty")
    for i, r in enumerate(rows):
        if len(r) != width:
            raise LevelError(f"{source}: ragged rows: row {i} has {len(r)} columns, row 0 has {width}")
    for i, r in enumerate(rows):
        for x, ch in enumerate(r):
            if ch not in TILES:
                why = f" ({NOT_SMB[ch]})" if ch in NOT_SMB else ""
                raise LevelError(f"{source}: unknown tile {ch!r}{why} at row {i}, column {x}; "
                                 f"allowed: {''.join(TILES)}")
    return Level(rows)


def load_level(path: str | Path) -> Level:
    """Read and validate a level .txt file; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise LevelError(f"{path}: cannot read level file ({e.__class__.__name__}: {e})") from None
    return parse_level(text, source=str(path))
