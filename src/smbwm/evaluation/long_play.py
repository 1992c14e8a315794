"""Long open-loop runs for the playability figures: 10-s windows of held-out episodes with their real
actions, and a minute of hands-on input from each spawn with the real game beside the dream."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from smbwm.data.spawn import Spawn, load_spawn
from smbwm.evaluation.fidelity import Rollout, Segment, pick_segments
from smbwm.evaluation.playability import PlayabilityConfig, Track, hands_on_actions, summarise, track_figures
from smbwm.models.mario_sprite import game_mario_position
from smbwm.models.motion import estimate_scrolls


def window_playability(roll: Rollout, paths: list[Path], cfg: PlayabilityConfig, rng: np.random.Generator,
                       name: str, batch_size: int) -> dict:
    """`cfg.windows` windows of `cfg.window_steps` steps from the episodes, dreamed open loop."""
    c = roll.model.context
    segs = pick_segments(paths, c + cfg.window_steps, cfg.windows, rng, f"{name} long", with_info=True)
    if not segs:
        return {"error": f"no episode has {c + cfg.window_steps} frames"}
    runs = []
    for i in tqdm(range(0, len(segs), batch_size), desc=f"playability {name}", leave=False):
        b = segs[i:i + batch_size]
        dream, _, _ = roll.run(b, cfg.window_steps)
        for s, d, e in zip(b, dream, dream_ends(roll, len(b))):
            gx, gy = game_mario_position(*(v[c - 1:] for v in s.info))
            tr = Track(np.concatenate([s.frames[c - 1:c], d]), s.frames[c - 1:], (gx, gy), e)
            runs.append(track_figures(tr, cfg, cfg.psnr_steps))
    return summarise(runs, cfg)


def dream_ends(roll: Rollout, batch: int) -> list[np.ndarray | None]:
    """Per run of the last Rollout.run, the steps where the end model says the game is over."""
    end = roll.model.end_model
    if roll.end_probs is None or end is None:
        return [None] * batch
    return list(roll.end_probs > end.cfg.threshold)


def play_real_game(spawn: Spawn, actions: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    """The emulator brought to the spawn, then `actions` until Mario dies or the level ends ->
    frames (1 + steps played, 240, 256, 3) from the spawn's last frame, and Mario's screen position."""
    if spawn.replay_actions is None:
        return None
    import gymnasium

    import smbwm.envs  # noqa: F401 - registers the ids
    from smbwm.data.spawn_tools import replay_to_spawn
    env = gymnasium.make(f"smbwm/SuperMarioBros-{spawn.meta.get('level')}-v0")
    try:
        frames = [replay_to_spawn(env, spawn)]
        keys = ("x_pos", "camera_x", "y_pos")
        pos = [[np.nan] * 3]                      # the spawn's own frame: only steps after it are compared
        for a in actions:
            obs, _, term, trunc, info = env.step(int(a))
            frames.append(obs)
            pos.append([info[k] for k in keys])
            if term or trunc:
                break
    finally:
        env.close()
    pos = np.asarray(pos, np.float64)
    return np.stack(frames), game_mario_position(pos[:, 0], pos[:, 1], pos[:, 2])


SHEET_SECONDS = (1, 5, 20, 60)          # the moments of each spawn's minute in the contact sheet


def spawn_playability(roll: Rollout, spawn_paths: list[Path], cfg: PlayabilityConfig) -> tuple[dict, dict]:
    """A minute of hands-on input from every spawn, all spawns in one batch; returns the figures per
    spawn and over all, and pictures: (dream, real) frames of the first spawn for the minute GIF, and
    per spawn the dream at SHEET_SECONDS (15 steps a second) for the contact sheet."""
    c, steps = roll.model.context, cfg.spawn_steps
    spawns = [load_spawn(p) for p in spawn_paths]
    acts = hands_on_actions(steps, cfg)
    segs = [Segment(s.full_res, np.concatenate([s.actions[:c - 1], acts]), estimate_scrolls(s.full_res)) for s in spawns]
    dream, _, _ = roll.run(segs, steps)                                           # (S, steps, 240, 256, 3)
    per, runs, first, sheet = {}, [], None, {}
    moments = sorted({min(15 * sec, steps) for sec in SHEET_SECONDS})
    for s, p, d, e in zip(spawns, spawn_paths, dream, dream_ends(roll, len(spawns))):
        played = play_real_game(s, acts)
        real, xy = played if played else (s.full_res[-1:], None)
        tr = Track(np.concatenate([s.full_res[-1:], d]), real, xy, e)
        per[p.name] = track_figures(tr, cfg)
        runs.append(per[p.name])
        sheet[p.name] = {t: tr.dream[t] for t in moments}
        if first is None:
            first = {"dream": tr.dream, "real": real, "name": p.name}
    return {"actions": f"right, A held {cfg.jump_hold} of every {cfg.jump_every} steps", "steps": steps,
            "all": summarise(runs, cfg), "per_spawn": per}, {**first, "sheet": sheet}
