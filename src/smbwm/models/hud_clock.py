"""The HUD's clock: the dream's TIME counts down as the game's does.

The denoiser draws at 60x64, where a HUD digit is a 2x2 blob, so the dream cannot tell a 7 from a 1:
left alone its clock stands still or wanders. The game's clock needs no picture to run: it falls by one
every few steps from whatever the first frame shows. What it looks like and how fast it runs are
learned from real episodes, whose info holds the game's `time` beside each frame (scripts/build_tile_book.py):
  - which three cells of the HUD show the clock's hundreds, tens and ones,
  - the glyph of each digit, as an ink mask (models.tiles.ink_masks: the glyph apart from its colours),
  - how many steps one tick takes (the commonest run of steps between two changes of `time`).
The tile book keeps them (TileBook.clock); the HUD snap writes the running clock's digits in the
colours the dream drew there. A clock state is (value, steps since the last tick) per dream, value -1
where the first frame's clock could not be read (then the clock cells are left to the snap as before).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

DIGITS = 3                 # the game's TIME has three digits
MIN_CONSISTENCY = 0.8      # a clock cell's glyph must follow its digit of `time` in this share of frames


@dataclass
class ClockSpec:
    cells: np.ndarray      # (3,) int: the HUD cells (row-major over the HUD grid) of hundreds, tens, ones
    inks: np.ndarray       # (10,) uint64: the glyph of each digit 0-9
    steps: int             # dream steps per tick of the clock

    def __post_init__(self):
        self.cells = np.asarray(self.cells, np.int64).reshape(DIGITS)
        self.inks = np.asarray(self.inks).astype(np.uint64).reshape(10)     # int64 as stored: the same bits
        if self.steps < 1 or len(np.unique(self.inks)) != 10:
            raise ValueError(f"a clock needs 10 distinct digit glyphs and >= 1 step per tick; got "
                             f"{len(np.unique(self.inks))} glyphs, {self.steps} steps")


def steps_per_tick(times: list[np.ndarray]) -> int:
    """The commonest number of steps between two changes of the game's `time` (episodes' info, every
    step); pauses (a death, a pipe) make the rarer, longer runs."""
    runs: Counter = Counter()
    for t in times:
        change = np.flatnonzero(np.diff(np.asarray(t)) != 0)
        runs.update(np.diff(change).tolist())
    if not runs:
        raise ValueError("no episode's time changed twice: too few or too short episodes to time the clock")
    return int(runs.most_common(1)[0][0])


def learn_clock(inks: np.ndarray, times: np.ndarray, steps: int) -> ClockSpec:
    """inks (N, P) uint64: the HUD cells' glyphs (ink_masks) of N real frames; times (N,) the game's
    `time` in each, taken from frames whose step did not change it (the screen shows a tick a step after
    the game's memory has it) -> where the clock's digits are and what each looks like. ValueError where
    the frames do not show a clock that follows `time` (too few frames, or no `time` in the info)."""
    inks, times = np.asarray(inks), np.asarray(times, np.int64)
    cells, glyphs = [], {}
    for div in (100, 10, 1):
        digit = times // div % 10
        values = np.unique(digit)
        best, best_score = -1, 0.0
        for c in range(inks.shape[1]):
            modal = {v: Counter(inks[digit == v, c].tolist()).most_common(1)[0] for v in values}
            if len({g for g, _ in modal.values()}) < len(values):
                continue                           # one glyph for two digits: not this digit's cell
            score = sum(n for _, n in modal.values()) / len(digit)
            if score > best_score and c not in cells:
                best, best_score = c, score
        if best < 0 or best_score < MIN_CONSISTENCY:
            raise ValueError(f"no HUD cell follows the {div}s of `time` in {MIN_CONSISTENCY:.0%} of the frames")
        cells.append(best)
        for v in values:                           # the tens and ones see every digit; the font is one
            glyphs.setdefault(int(v), Counter()).update(inks[digit == v, best].tolist())
    missing = [d for d in range(10) if d not in glyphs]
    if missing:
        raise ValueError(f"the frames never show the digit(s) {missing} in the clock: too few frames")
    return ClockSpec(np.array(cells), np.array([glyphs[d].most_common(1)[0][0] for d in range(10)], np.uint64), steps)


def read_clock(inks: np.ndarray, spec: ClockSpec) -> np.ndarray:
    """inks (B, P) the HUD cells' glyphs of B frames -> (B,) the value their clock shows, -1 where a
    clock cell shows no digit."""
    shown = np.asarray(inks)[:, spec.cells]                                  # (B, 3)
    match = shown[..., None] == spec.inks[None, None]                        # (B, 3, 10)
    digits = match.argmax(-1)
    value = digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2]
    return np.where(match.any(-1).all(-1), value, -1)


def start_state(values: np.ndarray, spec: ClockSpec | None = None) -> np.ndarray:
    """values (B,) or (B, k): the clock read from the frame a dream starts from, or from its last k frames
    -> (B, 2) clock states (value, steps since the tick). From k frames, the steps since the screen's
    last tick are known where it shows in them, else at least k - 1: a dream ticks in step with the game."""
    v = np.asarray(values, np.int64).reshape(len(values), -1)
    run = (v[:, ::-1] == v[:, -1:]).cumprod(1).sum(1)               # frames at the end showing the last value
    since = run - 1 if spec is None else np.minimum(run - 1, spec.steps - 1)
    return np.stack([v[:, -1], since], 1)


def tick(state: np.ndarray, spec: ClockSpec) -> np.ndarray:
    """The clock states one step later: every `spec.steps` steps the value falls by one, down to 0."""
    value, since = np.asarray(state, np.int64).T
    since = since + 1
    due = since >= spec.steps
    value = np.where(due & (value > 0), value - 1, value)
    return np.stack([value, np.where(due, 0, since)], 1)


def digit_inks(values: np.ndarray, spec: ClockSpec) -> np.ndarray:
    """(B,) values 0-999 -> (B, 3) uint64: the glyph each clock cell must show."""
    v = np.clip(np.asarray(values, np.int64), 0, 999)
    return spec.inks[np.stack([v // 100, v // 10 % 10, v % 10], 1)]
