"""What a player sees over long open-loop play: is a sharp Mario on screen, near the game's Mario; does
the camera travel as the game's; when does the dream die; how sharp is the picture.

Teacher-forced next-frame PSNR rewards blur (the mean of the possible next frames scores best), so
these figures are taken on windows of 10 s or more with the real actions, and on a minute of
hands-on input ("hold right, jump now and then") from the spawns.

Mario is found by his palette (models.mario_sprite): a ghost or a 4x4 blob of the low-res model space
has none of his exact colours, so the detector is also the sharpness test a blurred Mario cannot pass.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smbwm.models.mario_sprite import count_marios, find_mario
from smbwm.models.motion import HUD_ROWS, estimate_scrolls

@dataclass
class PlayabilityConfig:
    windows: int = 16                  # open-loop windows per set, played with the real actions
    window_steps: int = 150            # 10 s of game time at 15 steps/s
    psnr_steps: list[int] = field(default_factory=lambda: [1, 15, 45, 150])
    spawn_steps: int = 900             # one minute of hands-on input from each spawn (0: skip)
    jump_every: int = 12               # hands-on input: right, with A held for `jump_hold` of every `jump_every` steps
    jump_hold: int = 4
    stall_steps: int = 15              # a camera still this long while the game's moves is stalled
    near_px: float = 8.0               # "near the game's Mario": centre distance in pixels
    early_steps: int = 15              # steps counted for "near the game's Mario"
    end_tolerance: int = 15            # the dream "ends with the game" within this many steps of its end
    travel_tolerance: float = 0.2      # camera travel within +-20 % of the game's
    min_travel_px: int = 32            # windows where the game's camera travels less are not scored for travel
    minute_gif: bool = True            # a GIF of the first spawn's minute (dream | real)
    # The game's own reference: each window and spawn minute also played on the emulator with its input
    # this many NES frames (1/60 s) late and scored as the dream is (0: not played).
    late_frames: int = 1


def sharpness(frames: np.ndarray) -> np.ndarray:
    """(T, 240, 256, 3) -> (T,) mean absolute gradient (both axes) of the playfield's luminance."""
    f = np.asarray(frames[:, HUD_ROWS:], np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    return (np.abs(np.diff(f, axis=1)).mean((1, 2)) + np.abs(np.diff(f, axis=2)).mean((1, 2))) / 2


# The status bar's cells that never change within a level, (row, column) of its 8x8 grid: the words
# MARIO, WORLD and TIME, the "x" before the coin count, the world number ("1-1"). The score, the coin count
# and the clock change as the game plays, and the coin icon blinks.
HUD_LABEL_CELLS = tuple([(2, c) for c in (*range(3, 8), *range(18, 23), *range(25, 29))] +
                        [(3, 12)] + [(3, c) for c in range(19, 22)])


# The clock's three digits under TIME (models.hud_clock learns the same cells from the episodes).
HUD_CLOCK_CELLS = ((3, 26), (3, 27), (3, 28))


def hud_clock_kept(dream: np.ndarray, real: np.ndarray) -> np.ndarray:
    """dream (T, 240, 256, 3) steps 1..T, real (M+1, ...) steps 0..M -> (min(T, M),) per step while the game
    runs, whether the dream's clock shows exactly what the game's frame shows (the game's clock stops
    when it ends, so later steps are not scored)."""
    m = min(len(dream), len(real) - 1)
    d, r = np.asarray(dream)[:m], np.asarray(real)[1:m + 1]
    return np.all([(d[:, 8 * y:8 * y + 8, 8 * x:8 * x + 8] == r[:, 8 * y:8 * y + 8, 8 * x:8 * x + 8]).all((1, 2, 3))
                   for y, x in HUD_CLOCK_CELLS], axis=0)


def hud_labels_kept(dream: np.ndarray, real: np.ndarray) -> np.ndarray:
    """dream (T, 240, 256, 3) steps 1..T, real (M+1, 240, 256, 3) steps 0..M (M may be < T: the game ended)
    -> (T,) the share of HUD_LABEL_CELLS the dream shows exactly as the game's frame of that step (its last
    frame once it has ended): a label that fades, goes blank or turns into another glyph counts as lost."""
    ref = np.asarray(real)[np.minimum(np.arange(1, len(dream) + 1), len(real) - 1)]
    same = [(np.asarray(dream)[:, 8 * r:8 * r + 8, 8 * c:8 * c + 8] == ref[:, 8 * r:8 * r + 8, 8 * c:8 * c + 8]).all((1, 2, 3))
            for r, c in HUD_LABEL_CELLS]
    return np.mean(same, axis=0)


def longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for m in np.asarray(mask, bool):
        run = run + 1 if m else 0
        best = max(best, run)
    return best


def stalled(dream_scroll: np.ndarray, game_scroll: np.ndarray) -> np.ndarray:
    """Per step: the dream's camera stands still while the game's moves."""
    return (np.asarray(dream_scroll) == 0) & (np.asarray(game_scroll) != 0)


def death_step(shown: np.ndarray, dream_scroll: np.ndarray, game_scroll: np.ndarray, min_stall: int) -> int:
    """The first step (0-based) after which Mario stays lost, or the dream's camera stays still while
    the game's moves on at least `min_stall` of the remaining steps; len(shown) if alive at the end.
    `game_scroll` may be shorter (the game ended): its missing steps count as not moving."""
    n = len(shown)
    lost_from = n
    while lost_from > 0 and not shown[lost_from - 1]:
        lost_from -= 1
    still_from = n
    while still_from > 0 and dream_scroll[still_from - 1] == 0:
        still_from -= 1
    if np.count_nonzero(np.asarray(game_scroll)[still_from:]) < min_stall:
        still_from = n
    return int(min(lost_from, still_from))


def hands_on_actions(steps: int, cfg: PlayabilityConfig) -> np.ndarray:
    """Right held all the time, A held for `jump_hold` of every `jump_every` steps (NES bytes)."""
    t = np.arange(steps)
    return np.where(t % cfg.jump_every < cfg.jump_hold, 0x81, 0x80).astype(np.uint8)


def frame_playability(frames: np.ndarray) -> dict:
    """Figures of any rollout alone (no real game to compare with): camera travel and Mario shown."""
    frames = np.asarray(frames)
    scroll = estimate_scrolls(frames) if len(frames) > 1 else np.zeros(0, np.int8)
    shown, _, _ = find_mario(frames)
    return {"steps": int(len(frames)), "camera_travel_px": int(np.asarray(scroll, np.int64).sum()),
            "mario_shown_fraction": float(shown.mean()) if len(shown) else 0.0,
            "mario_copies_fraction": float((count_marios(frames) >= 2).mean()) if len(frames) else 0.0,
            "longest_camera_stop": longest_run(scroll == 0)}


@dataclass
class Track:
    """One open-loop run, dream beside the game: frames (T+1 with the last context frame first)."""
    dream: np.ndarray                  # (T+1, 240, 256, 3)
    real: np.ndarray                   # (T'+1, ...) the game's frames, T' <= T if the game ended early
    game_xy: tuple[np.ndarray, np.ndarray] | None = None   # (T'+1,) each, Mario's centre in the game
    dream_ends: np.ndarray | None = None   # (T,) bool: the end model says the game is over (None: no end model)


def track_figures(tr: Track, cfg: PlayabilityConfig, psnr_steps: list[int] | None = None, tiles=None) -> dict:
    """Per-run figures; steps are 1-based (step 1 = the first dreamed frame). `tiles` (the checkpoint's
    models.tiles.TileBook, if it has one) adds the share of cells that are the real game's tiles."""
    from smbwm.evaluation.metrics import psnr_per_frame
    d_scroll = estimate_scrolls(tr.dream).astype(np.int64)
    g_scroll = estimate_scrolls(tr.real).astype(np.int64)
    n, m = len(d_scroll), len(g_scroll)                       # m < n: the game ended (death) before the dream
    shown, x, y = find_mario(tr.dream[1:])
    copies = count_marios(tr.dream[1:]) >= 2
    stall = stalled(d_scroll[:m], g_scroll)
    sharp_d, sharp_r = sharpness(tr.dream[1:m + 1]), sharpness(tr.real[1:])
    stall_reached = _run_ends(stall, cfg.stall_steps)
    labels = hud_labels_kept(tr.dream[1:], tr.real)
    out = {
        "steps": n, "game_steps": m,
        "mario_shown": float(shown.mean()),
        "mario_copies": float(copies.mean()),                 # steps showing two Marios or more
        "camera_travel_px": int(d_scroll.sum()), "game_travel_px": int(g_scroll[:m].sum()),
        "dream_travel_same_steps_px": int(d_scroll[:m].sum()),
        "longest_stall": longest_run(stall), "longest_camera_stop": longest_run(d_scroll == 0),
        "death_step": death_step(shown, d_scroll, g_scroll, cfg.stall_steps),
        # below 1: blur; above 1: noise or ghost edges the game does not have
        "sharpness_ratio": float(sharp_d.mean() / max(sharp_r.mean(), 1e-6)),
        "first_stall_step": int(np.argmax(stall_reached)) + 1 if stall_reached.any() else None,
        "hud_labels": float(labels.mean()), "hud_labels_end": float(labels[-1]),
        "hud_clock": float(hud_clock_kept(tr.dream[1:], tr.real).mean()) if m else None,
    }
    if tr.dream_ends is not None:
        out["dream_end_step"] = int(np.argmax(tr.dream_ends)) + 1 if tr.dream_ends.any() else None
    if tr.game_xy is not None:
        gx, gy = tr.game_xy[0][1:m + 1], tr.game_xy[1][1:m + 1]
        dist = np.hypot(x[:m] - gx, y[:m] - gy)
        misses = early_misses(x[:m], y[:m], gx, gy, cfg)
        out["near_early"] = misses["near"] / misses["scored"] if misses["scored"] else None
        out["early_misses"] = misses
        out["median_distance_px"] = float(np.nanmedian(dist)) if np.isfinite(dist).any() else None
    if tiles is not None:       # streaks, dither, garbled digits: cells the game never draws
        hud, field = tiles.game_tile_share(tr.dream[1:], HUD_ROWS)
        out.update({"game_tiles": float(field.mean()), "game_tiles_hud": float(hud.mean()),
                    "game_tiles_real": float(tiles.game_tile_share(tr.real[1:], HUD_ROWS)[1].mean())})
    if psnr_steps:
        out["psnr_240x256"] = {str(h): float(psnr_per_frame(tr.dream[h:h + 1], tr.real[h:h + 1])[0])
                               for h in psnr_steps if h <= m}
    return out


MISS_KINDS = ("missing", "height", "along", "both")


def early_misses(x: np.ndarray, y: np.ndarray, gx: np.ndarray, gy: np.ndarray, cfg: PlayabilityConfig) -> dict:
    """Of the first `early_steps` steps where the game shows Mario, how many the dream gets near and how
    it misses the others: no sharp Mario drawn ("missing"), off in height only (a jump or fall drawn
    wrong), off along the level only (running or camera), or off in both; counts, summed by `summarise`."""
    k = cfg.early_steps
    x, y, gx, gy = (np.asarray(v[:k], np.float64) for v in (x, y, gx, gy))
    scored = np.isfinite(gx)
    drawn = scored & np.isfinite(x)
    off_x = np.abs(np.where(drawn, x - gx, 0)) > cfg.near_px
    off_y = np.abs(np.where(drawn, y - gy, 0)) > cfg.near_px
    near = drawn & (np.hypot(np.where(drawn, x - gx, 0), np.where(drawn, y - gy, 0)) <= cfg.near_px)
    far = drawn & ~near
    return {"scored": int(scored.sum()), "near": int(near.sum()), "missing": int((scored & ~drawn).sum()),
            "height": int((far & off_y & ~off_x).sum()), "along": int((far & off_x & ~off_y).sum()),
            # off by more than near_px in distance though by at most that along each axis counts as both
            "both": int((far & ~(off_y ^ off_x)).sum())}


def _run_ends(mask: np.ndarray, length: int) -> np.ndarray:
    """True at each step where a run of `mask` reaches `length` steps."""
    run, out = 0, np.zeros(len(mask), bool)
    for i, v in enumerate(np.asarray(mask, bool)):
        run = run + 1 if v else 0
        out[i] = run == length
    return out


def run_outcomes(run: dict, cfg: PlayabilityConfig) -> dict:
    """Whether one run (track_figures) meets each per-run target: the camera travelled within
    travel_tolerance of the game's (None where the game's camera moved too little to score), no stall
    longer than stall_steps, Mario alive at the end. `summarise` counts these; so do paired comparisons
    of two reports on the same windows (scripts/compare_reports.py)."""
    scored = run["game_travel_px"] >= cfg.min_travel_px
    ratio = run["dream_travel_same_steps_px"] / run["game_travel_px"] if scored else None
    return {"travel_in_band": None if ratio is None else bool(abs(ratio - 1) <= cfg.travel_tolerance),
            "no_long_stall": bool(run["longest_stall"] <= cfg.stall_steps),
            "alive_at_end": bool(run["death_step"] >= run["steps"])}


def summarise(runs: list[dict], cfg: PlayabilityConfig) -> dict:
    """The set's figures from per-run figures (means over runs, fractions of runs meeting targets)."""
    if not runs:
        return {}
    travel = [r for r in runs if r["game_travel_px"] >= cfg.min_travel_px]
    ratio = [r["dream_travel_same_steps_px"] / r["game_travel_px"] for r in travel]
    near = [r["near_early"] for r in runs if r.get("near_early") is not None]
    met = [run_outcomes(r, cfg) for r in runs]
    out = {
        "runs": len(runs), "steps": runs[0]["steps"],
        "mario_shown": float(np.mean([r["mario_shown"] for r in runs])),
        "mario_copies": float(np.mean([r["mario_copies"] for r in runs])),
        "mario_near_early": float(np.mean(near)) if near else None,
        "camera_travel_ratio_median": float(np.median(ratio)) if ratio else None,
        "camera_travel_within_tolerance": float(np.mean([m["travel_in_band"] for m in met if m["travel_in_band"] is not None]))
        if ratio else None,
        "runs_scored_for_travel": len(travel),
        "longest_stall_median": float(np.median([r["longest_stall"] for r in runs])),
        "runs_without_long_stall": float(np.mean([m["no_long_stall"] for m in met])),
        "death_step_median": float(np.median([r["death_step"] for r in runs])),
        "alive_at_end": float(np.mean([m["alive_at_end"] for m in met])),
        "sharpness_ratio": float(np.mean([r["sharpness_ratio"] for r in runs])),
    }
    for k in ("game_tiles", "game_tiles_hud", "game_tiles_real", "hud_labels", "hud_labels_end", "hud_clock"):
        scored = [r[k] for r in runs if r.get(k) is not None]
        if scored:
            out[k] = float(np.mean(scored))
    if "dream_end_step" in runs[0]:
        ended = [r for r in runs if r["dream_end_step"] is not None]
        game_ended = [r for r in runs if r["game_steps"] < r["steps"]]        # the game ended inside the run
        out.update({
            "dream_ended": len(ended) / len(runs),
            "dream_end_step_median": float(np.median([r["dream_end_step"] for r in ended])) if ended else None,
            "game_ended": len(game_ended) / len(runs),
            # the dream ended within end_tolerance steps of the game's end (of the runs where the game ended)
            "ended_with_game": float(np.mean([r["dream_end_step"] is not None and
                                              abs(r["dream_end_step"] - r["game_steps"]) <= cfg.end_tolerance
                                              for r in game_ended])) if game_ended else None,
            # the dream ended where the game plays on (before its end, beyond the tolerance)
            "ended_early": float(np.mean([r["dream_end_step"] is not None and
                                          r["dream_end_step"] < r["game_steps"] - cfg.end_tolerance for r in runs])),
        })
    misses = [r["early_misses"] for r in runs if r.get("early_misses")]
    scored = sum(m["scored"] for m in misses)
    if scored:          # shares of all scored early steps, pooled over the runs
        out["early_misses"] = {k: sum(m[k] for m in misses) / scored for k in ("near", *MISS_KINDS)}
    ps = {}
    for r in runs:
        for h, v in r.get("psnr_240x256", {}).items():
            ps.setdefault(h, []).append(v)
    if ps:
        out["psnr_240x256"] = {h: float(np.mean(v)) for h, v in ps.items()}
    return out
