"""Long open-loop runs for the playability figures: 10-s windows of held-out episodes with their real
actions, and a minute of hands-on input from each spawn with the real game beside the dream."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from smbwm.data.episode import read_episode
from smbwm.data.spawn import load_spawn
from smbwm.data.spawn_tools import is_emulator_episode, replay_actions, replay_level
from smbwm.evaluation.fidelity import Rollout, Segment, pick_segments
from smbwm.evaluation.playability import PlayabilityConfig, Track, hands_on_actions, summarise, track_figures
from smbwm.models.mario_sprite import game_mario_position
from smbwm.models.motion import estimate_scrolls


def window_playability(roll: Rollout, paths: list[Path], cfg: PlayabilityConfig, rng: np.random.Generator,
                       name: str, batch_size: int, dream: bool = True) -> dict:
    """`cfg.windows` windows of `cfg.window_steps` steps from the episodes, dreamed open loop, and the
    game's own late-input reference on them (cfg.late_frames; dream=False: the reference alone)."""
    c = roll.model.context
    segs = pick_segments(paths, c + cfg.window_steps, cfg.windows, rng, f"{name} long", with_info=True)
    if not segs:
        return {"error": f"no episode has {c + cfg.window_steps} frames"}
    reference = {"game_input_late": late_input_reference(segs, c, cfg, roll.model.tiles)} if cfg.late_frames else {}
    if not dream:
        return reference
    runs = []
    for i in tqdm(range(0, len(segs), batch_size), desc=f"playability {name}", leave=False):
        b = segs[i:i + batch_size]
        dream, _, _ = roll.run(b, cfg.window_steps, progress=f"{name} windows {i + 1}-{i + len(b)}, steps")
        for s, d, e in zip(b, dream, dream_ends(roll, len(b))):
            gx, gy = game_mario_position(*(v[c - 1:] for v in s.info))
            tr = Track(np.concatenate([s.frames[c - 1:c], d]), s.frames[c - 1:], (gx, gy), e)
            runs.append({**window_id(s), **track_figures(tr, cfg, cfg.psnr_steps, roll.model.tiles)})
    # each window's own figures too: two reports on the same windows compare window by window
    return {**summarise(runs, cfg), "per_window": runs, **reference}


def window_id(seg: Segment) -> dict:
    """Which window a run is: its episode file and the frame it starts from (pairs runs of two reports)."""
    return {"episode": Path(seg.source[0]).name, "start": int(seg.source[1])} if seg.source else {}


def dream_ends(roll: Rollout, batch: int) -> list[np.ndarray | None]:
    """Per run of the last Rollout.run, the steps where the end model says the game is over."""
    end = roll.model.end_model
    if roll.end_probs is None or end is None:
        return [None] * batch
    return list(roll.end_probs > end.cfg.threshold)


def play_real_game(level: str, replay, actions: np.ndarray, frame_skip: int = 4, late_frames: int = 0,
                   where: str = "replay") -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The emulator reset at `level` and brought by `replay` (NES bytes from the reset, one per step of
    `frame_skip` NES frames) to a recorded frame, then `actions` until Mario dies or the level ends ->
    frames (1 + steps played, 240, 256, 3) from the replayed frame and Mario's screen position (NaN on
    the replayed frame: only steps after it are compared). late_frames > 0 presses every action that many
    NES frames (1/60 s) late, the last replayed one held meanwhile: the game's own reference run."""
    import gymnasium

    import smbwm.envs  # noqa: F401 - registers the ids
    env = gymnasium.make(f"smbwm/SuperMarioBros-{level}-v0", frame_skip=1)
    pressed = np.repeat(np.concatenate([np.asarray(replay, np.int64), np.asarray(actions, np.int64)]), frame_skip)
    first = len(replay) * frame_skip                      # NES frames of the replay
    try:
        frames = [replay_actions(env, pressed[:first], where)]
        keys = ("x_pos", "camera_x", "y_pos")
        pos = [[np.nan] * 3]
        for i in range(first, len(pressed)):
            obs, _, term, trunc, info = env.step(int(pressed[max(i - late_frames, first - 1, 0)]))
            if (i - first) % frame_skip == frame_skip - 1 or term or trunc:
                frames.append(obs)
                pos.append([info[k] for k in keys])
            if term or trunc:
                break
    finally:
        env.close()
    pos = np.asarray(pos, np.float64)
    return np.stack(frames), game_mario_position(pos[:, 0], pos[:, 1], pos[:, 2])


def _padded(frames: np.ndarray, length: int) -> np.ndarray:
    """A run of the real game that ended (Mario died, the level ended) held on its last frame."""
    return frames if len(frames) >= length else np.concatenate([frames, np.repeat(frames[-1:], length - len(frames), 0)])


def late_input_reference(segs: list[Segment], context: int, cfg: PlayabilityConfig, tiles=None) -> dict:
    """The real game as a nearly perfect dream: each window's episode replayed on the emulator to the
    window's last context frame, then the window's own actions pressed `cfg.late_frames` NES frames late
    (a fraction of a player's reaction time), scored against the recorded game exactly as the dream is.
    It says how far a run that starts that little off drifts over the window: what the figures can ask
    of a dream that is not the game itself. Windows of episodes not recorded on the emulator (or whose
    replay does not reach the recorded frame) are counted, not scored."""
    c, runs, skipped = context, [], 0
    for s in tqdm(segs, desc="the game, input late", leave=False):
        ep = read_episode(s.source[0], frames=False) if s.source else None
        level = replay_level(ep) if ep is not None and is_emulator_episode(ep) else None
        if level is None:
            skipped += 1
            continue
        first = s.source[1] + c - 1                                   # the episode's frame the dream starts from
        frames, _ = play_real_game(level, ep.actions[:first], s.actions[c - 1:c - 1 + cfg.window_steps],
                                   int(ep.attrs.get("frame_skip", 4)), cfg.late_frames, str(s.source[0]))
        if not np.array_equal(frames[0], s.frames[c - 1]):
            skipped += 1
            continue
        gx, gy = game_mario_position(*(v[c - 1:] for v in s.info))
        runs.append({**window_id(s), **track_figures(Track(_padded(frames, cfg.window_steps + 1), s.frames[c - 1:],
                                                             (gx, gy)), cfg, cfg.psnr_steps, tiles)})
    return {**summarise(runs, cfg), "per_window": runs, "late_frames": cfg.late_frames, "windows_not_replayed": skipped}


SHEET_SECONDS = (1, 5, 20, 60)          # the moments of each spawn's minute in the contact sheet


def spawn_playability(roll: Rollout, spawn_paths: list[Path], cfg: PlayabilityConfig,
                      dream: bool = True) -> tuple[dict, dict | None]:
    """A minute of hands-on input from every spawn, all spawns in one batch; returns the figures per
    spawn and over all, and pictures: (dream, real) frames of the first spawn for the minute GIF, and
    per spawn the dream at SHEET_SECONDS (15 steps a second) for the contact sheet. With
    cfg.late_frames, the game's own late-input reference too (dream=False: it alone, no pictures)."""
    c, steps = roll.model.context, cfg.spawn_steps
    spawns = [load_spawn(p) for p in spawn_paths]
    acts = hands_on_actions(steps, cfg)
    dreams, ends = [None] * len(spawns), [None] * len(spawns)
    if dream:
        segs = [Segment(s.full_res, np.concatenate([s.actions[:c - 1], acts]), estimate_scrolls(s.full_res), key=i)
                for i, s in enumerate(spawns)]
        dreams = roll.run(segs, steps, progress="spawn minutes, steps")[0]        # (S, steps, 240, 256, 3)
        ends = dream_ends(roll, len(spawns))
    per, runs, late_runs, late_per, first, sheet = {}, [], [], {}, None, {}
    moments = sorted({min(15 * sec, steps) for sec in SHEET_SECONDS})
    for s, p, d, e in zip(spawns, spawn_paths, dreams, ends):
        level, skip = s.meta.get("level"), int(s.meta.get("frame_skip", 4))
        played = play_real_game(level, s.replay_actions, acts, skip, 0, str(p)) if s.replay_actions is not None else None
        real, xy = played if played else (s.full_res[-1:], None)
        if played and cfg.late_frames:
            late, _ = play_real_game(level, s.replay_actions, acts, skip, cfg.late_frames, str(p))
            late_per[p.name] = track_figures(Track(_padded(late, steps + 1), real, xy), cfg, tiles=roll.model.tiles)
            late_runs.append(late_per[p.name])
        if d is None:
            continue
        tr = Track(np.concatenate([s.full_res[-1:], d]), real, xy, e)
        per[p.name] = track_figures(tr, cfg, tiles=roll.model.tiles)
        runs.append(per[p.name])
        sheet[p.name] = {t: tr.dream[t] for t in moments}
        if first is None:
            first = {"dream": tr.dream, "real": real, "name": p.name}
    out = {"actions": f"right, A held {cfg.jump_hold} of every {cfg.jump_every} steps", "steps": steps}
    if runs:
        out.update({"all": summarise(runs, cfg), "per_spawn": per})
    if late_runs:
        out["game_input_late"] = {**summarise(late_runs, cfg), "per_spawn": late_per, "late_frames": cfg.late_frames}
    return out, ({**first, "sheet": sheet} if first else None)
