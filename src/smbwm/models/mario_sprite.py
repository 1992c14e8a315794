"""Mario's sprite in a full-res NES frame, found by his palette.

Small and big Mario are drawn in three NES colours (red, skin, brown in nes-py's palette), and a 16x16
window holding enough pixels of *each* is Mario. A ghost (Mario blended with the sky) or a 4x4 blob of
the low-res model space has none of the exact colours, so the test is also one of sharpness. The
playability figures (evaluation.playability) count with it, and the sampler can redraw a frame that
fails it (WorldModel.step, SamplerConfig.mario_retries).
"""
from __future__ import annotations

import numpy as np

from smbwm.models.motion import HUD_ROWS

MARIO_COLOURS = np.array([[248, 56, 0], [252, 160, 68], [172, 124, 0]], np.int16)   # red, skin, brown
COLOUR_TOLERANCE = 30      # per channel; a "?" block's (228, 92, 16) must stay outside the red class
MARIO_WINDOW = 16          # px: small Mario's sprite
# Each colour covers >= 35 pixels of a real Mario's 16x16 window in every frame tested; a 4x4-averaged
# Mario (the low-res blob, upsampled) keeps at most one 16-pixel block of a colour: 20 separates them.
MIN_COLOUR_PIXELS = 20


# Per channel value, a bit per Mario colour within the tolerance: a pixel's classes are the AND of its
# three channels' bits (three table lookups instead of a distance per colour).
_CHANNEL_BITS = np.zeros((3, 256), np.uint8)
for _i, _c in enumerate(MARIO_COLOURS):
    for _ch in range(3):
        _CHANNEL_BITS[_ch, max(0, _c[_ch] - COLOUR_TOLERANCE):_c[_ch] + COLOUR_TOLERANCE + 1] |= 1 << _i


def _box_sum(mask: np.ndarray, k: int) -> np.ndarray:
    """(T, H, W) -> (T, H-k+1, W-k+1) sums over every k x k window (summed-area table)."""
    c = np.zeros((mask.shape[0], mask.shape[1] + 1, mask.shape[2] + 1), np.int32)
    np.cumsum(mask, 1, dtype=np.int32, out=c[:, 1:, 1:])
    np.cumsum(c[:, 1:, 1:], 2, out=c[:, 1:, 1:])
    return c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]


def _window_scores(frames: np.ndarray) -> np.ndarray:
    """(t, 240, 256, 3) -> (t, h, w) per 16x16 window below the HUD: the Mario-colour pixel count if it
    holds enough of each of his colours, else -1."""
    f = np.asarray(frames[:, HUD_ROWS:], np.uint8)
    bits = _CHANNEL_BITS[0, f[..., 0]] & _CHANNEL_BITS[1, f[..., 1]] & _CHANNEL_BITS[2, f[..., 2]]   # (t, H, W)
    counts = [_box_sum((bits >> i) & 1, MARIO_WINDOW) for i in range(len(MARIO_COLOURS))]   # 3 x (t, h, w)
    enough = np.minimum(np.minimum(counts[0], counts[1]), counts[2]) >= MIN_COLOUR_PIXELS
    return np.where(enough, counts[0] + counts[1] + counts[2], -1)


def find_mario(frames: np.ndarray, chunk: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 240, 256, 3) uint8 -> shown (T,) bool, and Mario's centre x, y (T,) in screen pixels
    (NaN where not shown). Looks below the HUD only (the HUD has no Mario colours but the coin icon)."""
    shown, xs, ys = [], [], []
    k = MARIO_WINDOW
    for i in range(0, len(frames), chunk):
        s = _window_scores(frames[i:i + chunk])
        score = s.reshape(len(s), -1)
        best = score.argmax(1)
        y, x = np.divmod(best, s.shape[2])
        ok = score.max(1) >= 0
        shown.append(ok)
        xs.append(np.where(ok, x + k / 2, np.nan))
        ys.append(np.where(ok, y + k / 2 + HUD_ROWS, np.nan))
    return np.concatenate(shown), np.concatenate(xs), np.concatenate(ys)


def mario_centres(frames: np.ndarray, most: int = 4, chunk: int = 64) -> list[list[tuple[float, float]]]:
    """(T, 240, 256, 3) uint8 -> per frame, the centre (x, y) in screen pixels of each separate Mario it
    shows (up to `most`, the best first): windows that pass find_mario's test, each one found blanking
    every window that overlaps it. The real game shows one; a dream that samples can draw copies."""
    k, out = MARIO_WINDOW, []
    for i in range(0, len(frames), chunk):
        for s in _window_scores(frames[i:i + chunk]):
            found = []
            while len(found) < most and s.max() >= 0:
                y, x = np.unravel_index(s.argmax(), s.shape)
                s[max(0, y - k + 1):y + k, max(0, x - k + 1):x + k] = -1
                found.append((x + k / 2, y + k / 2 + HUD_ROWS))
            out.append(found)
    return out


def count_marios(frames: np.ndarray, most: int = 4, chunk: int = 64) -> np.ndarray:
    """(T, 240, 256, 3) uint8 -> (T,) how many separate Marios each frame shows (up to `most`, mario_centres)."""
    return np.asarray([len(c) for c in mario_centres(frames, most, chunk)], np.int64)


def game_mario_position(x_pos: np.ndarray, camera_x: np.ndarray, y_pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mario's sprite centre on screen from the game's info keys (x_pos/camera_x: level pixels of his
    left edge and of the screen's; y_pos grows upwards from 255 - the screen row above his feet)."""
    x = np.asarray(x_pos, np.float64) - np.asarray(camera_x, np.float64) + MARIO_WINDOW / 2
    y = 279.0 - np.asarray(y_pos, np.float64)
    on_screen = (x >= 0) & (x < 256) & (y > HUD_ROWS + 8) & (y < 232)
    return np.where(on_screen, x, np.nan), np.where(on_screen, y, np.nan)
