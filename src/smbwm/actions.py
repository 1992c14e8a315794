"""The one action encoding of the project: NES controller bytes.

An action is the raw controller byte nes-py takes (bit per button). Named action sets are lists of
bytes; the model sees a multi-hot over the 6 playing buttons (start/select never matter in play).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

BUTTON_BITS = {
    "right": 0x80, "left": 0x40, "down": 0x20, "up": 0x10,
    "start": 0x08, "select": 0x04, "B": 0x02, "A": 0x01,
}
NOOP = 0
# Order of the model's multi-hot vector.
PLAYING_BUTTONS = ("right", "left", "down", "up", "B", "A")
NUM_PLAYING_BUTTONS = len(PLAYING_BUTTONS)
_PLAYING_BITS = np.array([BUTTON_BITS[b] for b in PLAYING_BUTTONS], dtype=np.uint8)


def to_byte(buttons: Iterable[str]) -> int:
    """['right', 'A'] -> 0x81. 'NOOP' (or nothing) is 0."""
    byte = 0
    for b in buttons:
        if b == "NOOP":
            continue
        if b not in BUTTON_BITS:
            raise ValueError(f"unknown NES button {b!r}; known: {sorted(BUTTON_BITS)} and NOOP")
        byte |= BUTTON_BITS[b]
    return byte


def to_buttons(byte: int) -> list[str]:
    """0x81 -> ['right', 'A']; 0 -> []."""
    return [name for name, bit in BUTTON_BITS.items() if int(byte) & bit]


def name(byte: int) -> str:
    """Human-readable name of an action byte, e.g. 'right+B+A' or 'NOOP'."""
    return "+".join(to_buttons(byte)) or "NOOP"


def _named(sets: Sequence[Sequence[str]]) -> list[int]:
    return [to_byte(s) for s in sets]


# The action sets of gym-super-mario-bros (gym_super_mario_bros.actions), as bytes.
RIGHT_ONLY = _named([["NOOP"], ["right"], ["right", "A"], ["right", "B"], ["right", "A", "B"]])
SIMPLE_MOVEMENT = RIGHT_ONLY + _named([["A"], ["left"]])
COMPLEX_MOVEMENT = SIMPLE_MOVEMENT + _named(
    [["left", "A"], ["left", "B"], ["left", "A", "B"], ["down"], ["up"]]
)
ACTION_SETS = {"right_only": RIGHT_ONLY, "simple": SIMPLE_MOVEMENT, "complex": COMPLEX_MOVEMENT}


def action_set(name_or_bytes: str | Sequence[int]) -> list[int]:
    """Resolve 'simple' / 'complex' / 'right_only' or an explicit list of bytes."""
    if isinstance(name_or_bytes, str):
        key = name_or_bytes.lower().replace("-", "_")
        if key not in ACTION_SETS:
            raise ValueError(f"unknown action set {name_or_bytes!r}; choose one of {sorted(ACTION_SETS)}")
        return list(ACTION_SETS[key])
    out = [int(b) for b in name_or_bytes]
    for b in out:
        if not 0 <= b <= 255:
            raise ValueError(f"action byte {b} is outside 0..255")
    return out


def multi_hot(actions: np.ndarray) -> np.ndarray:
    """NES bytes (...,) uint8 -> (..., 6) float32 multi-hot over PLAYING_BUTTONS."""
    a = np.asarray(actions, dtype=np.uint8)[..., None]
    return ((a & _PLAYING_BITS) != 0).astype(np.float32)


# Every byte's multi-hot, (256, 6) float32: index it with a batch of bytes (MULTI_HOT_TABLE[acts]) or
# turn it into a tensor once (torch.from_numpy) to look actions up on the model's device.
MULTI_HOT_TABLE = multi_hot(np.arange(256, dtype=np.uint8))
MULTI_HOT_TABLE.setflags(write=False)
