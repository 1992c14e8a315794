"""The HUD's clock (models.hud_clock): learned from real emulator episodes by scripts/build_tile_book.py,
run by the dream so that TIME counts down as the game's does."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from conftest import build_tile_book

from smbwm.data.episode import list_episodes, read_episode
from smbwm.envs.world_model_env import WorldModelEnv
from smbwm.models.hud_clock import ClockSpec, digit_inks, learn_clock, start_state, tick
from smbwm.models.world_model import WorldModel, to_model
from smbwm.utils.paths import CHECKPOINTS


def steady_frames(episodes) -> tuple[np.ndarray, np.ndarray]:
    """Real frames whose step left the game's `time` as it was (the screen shows a tick a step late), and that time."""
    frames, times = [], []
    for p in list_episodes(episodes):
        ep = read_episode(p)
        t = np.asarray(ep.info["time"])
        steady = np.flatnonzero(t[1:] == t[:-1]) + 1
        frames.append(ep.frames[steady])
        times.append(t[steady])
    return np.concatenate(frames), np.concatenate(times)


def test_the_book_learns_where_the_clock_is_and_reads_real_frames_as_the_game_does(tiles_checkpoint, real_episodes):
    book = WorldModel.load(tiles_checkpoint)[0].tiles
    assert book.clock is not None
    assert book.clock.cells.tolist() == [3 * 32 + 26, 3 * 32 + 27, 3 * 32 + 28]    # under "TIME", x 208-231
    assert book.clock.steps == 5                                                    # 20 NES frames a tick
    report = json.loads((tiles_checkpoint / "tiles_report.json").read_text())
    assert report["clock_cells"] == book.clock.cells.tolist() and report["clock_steps_per_tick"] == 5
    frames, times = steady_frames(real_episodes)
    assert len(np.unique(times % 10)) == 10                                          # every digit is tested
    assert np.array_equal(book.read_clock(to_model(frames)), times)


def test_the_shipped_book_reads_the_clock_of_real_emulator_frames(real_episodes):
    book = WorldModel.load(CHECKPOINTS)[0].tiles
    assert book is not None and book.clock is not None
    frames, times = steady_frames(real_episodes)
    assert np.array_equal(book.read_clock(to_model(frames)), times)


def test_the_clock_ticks_every_few_steps_and_stops_at_zero():
    spec = ClockSpec(np.array([0, 1, 2]), np.arange(1, 11, dtype=np.uint64), steps=3)
    state, seen = start_state(np.array([2, -1])), []
    for _ in range(9):
        state = tick(state, spec)
        seen.append(state[:, 0].tolist())
    assert [s[0] for s in seen] == [2, 2, 1, 1, 1, 0, 0, 0, 0]
    assert all(s[1] == -1 for s in seen)                      # an unreadable clock stays unknown
    assert digit_inks(np.array([407]), spec).tolist() == [[5, 1, 8]]      # the game shows leading zeros
    # from the last frames: where the screen's last tick shows, the next one comes `steps` steps after it
    state = start_state(np.array([[301, 300, 300, 300], [300, 300, 300, 300]]), spec)
    assert state.tolist() == [[300, 2], [300, 2]]             # ticks in 1 step; unseen: at least 3 frames ago
    assert start_state(np.array([[301, 301, 300, 300]]), spec).tolist() == [[300, 1]]


def test_learning_a_clock_from_frames_that_do_not_show_one_is_a_clear_error(real_episodes):
    frames, times = steady_frames(real_episodes)
    from smbwm.models.palette import palette_index
    from smbwm.models.tiles import frame_cells, ink_masks
    inks = ink_masks(frame_cells(palette_index(to_model(frames[:, :32])).numpy().astype(np.uint8)))
    assert learn_clock(inks, times, 5).cells.tolist() == [122, 123, 124]
    with pytest.raises(ValueError, match="follows"):
        learn_clock(inks, np.random.default_rng(0).permutation(times), 5)
    few = np.isin(times % 10, [0, 1, 2])
    with pytest.raises(ValueError, match="never show the digit"):
        learn_clock(inks[few], times[few], 5)


def test_the_dream_counts_the_clock_down_in_its_frames_and_info(tiles_checkpoint, tiny_spawns):
    env = WorldModelEnv(tiles_checkpoint, spawn_dir=tiny_spawns, end_episodes=False)
    book = env.model.tiles
    frame, info = env.reset(seed=0, options={"spawn": 0})
    times = [info["time"]]
    assert times[0] == int(book.read_clock(to_model(frame[None]))[0]) > 300
    for _ in range(12):
        frame, _, _, _, info = env.step(0x81)
        times.append(info["time"])
        assert int(book.read_clock(to_model(frame[None]))[0]) == info["time"]
    ticks = np.flatnonzero(np.diff(times))
    assert np.all(np.diff(times)[ticks] == -1) and len(ticks) >= 2 and np.all(np.diff(ticks) == 5)


def test_a_dream_from_real_context_ticks_in_step_with_the_game(tiles_checkpoint, real_episodes):
    """Open loop over real windows: the dream's clock shows what the game's own frames show, step by step."""
    from smbwm.evaluation.fidelity import Rollout, pick_segments
    from smbwm.models.sampler import SamplerConfig
    model, _ = WorldModel.load(tiles_checkpoint)
    c, steps = model.context, 12
    segs = pick_segments(list_episodes(real_episodes), c + steps, 3, np.random.default_rng(1), "test")
    dream, _, _ = Rollout(model, SamplerConfig(num_steps=1, hud_snap=16), "cpu", None, seed=0).run(segs, steps)
    real = np.stack([s.frames[c:] for s in segs])                              # (B, steps, 240, 256, 3)
    read = lambda f: model.tiles.read_clock(to_model(f.reshape(-1, 240, 256, 3))).reshape(len(segs), -1)  # noqa: E731
    game = read(real)
    assert (np.diff(game, axis=1) != 0).any()                                  # the game ticked in the windows
    assert np.array_equal(read(dream), game)


def test_the_dream_ends_the_episode_when_its_clock_runs_out(tiles_checkpoint, tiny_spawns):
    env = WorldModelEnv(tiles_checkpoint, spawn_dir=tiny_spawns, lost_end_steps=0)
    env.reset(seed=0, options={"spawn": 0})
    env._clock = start_state(np.array([1]))          # a spawn with one tick left on the clock
    reasons = []
    for _ in range(5):
        *_, terminated, _, info = env.step(0x80)
        reasons.append((info["time"], terminated, info["end_reason"]))
        if terminated:
            break
    assert reasons[-1] == (0, True, "time_up") and all(not r[1] for r in reasons[:-1])


def test_clock_only_adds_the_clock_and_keeps_the_books_tiles(tiles_checkpoint, tiny_checkpoint, real_episodes, tmp_path):
    out = tmp_path / "clock"
    done = build_tile_book(["--data", str(real_episodes), "--checkpoint", str(tiles_checkpoint), "--out", str(out),
                            "--clock-only"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    before, after = WorldModel.load(tiles_checkpoint)[0].tiles, WorldModel.load(out)[0].tiles
    for name in ("tiles", "counts", "hud_tiles", "hud_allowed", "hud_static", "clock_cells", "clock_inks"):
        assert np.array_equal(getattr(before, name).numpy(), getattr(after, name).numpy()), name
    # episodes without the game's `time`, and a checkpoint without a book: one line each, nothing written
    bare = tmp_path / "bare"
    bare.mkdir()
    for p in list_episodes(real_episodes):
        shutil.copy(p, bare / p.name)
        with h5py.File(bare / p.name, "a") as f:
            del f["info/time"]
    done = build_tile_book(["--data", str(bare), "--checkpoint", str(tiles_checkpoint), "--out", str(tmp_path / "x"),
                            "--clock-only"], cwd=tmp_path)
    assert done.returncode != 0 and "`time`" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()
    done = build_tile_book(["--data", str(real_episodes), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "y"),
                            "--clock-only"], cwd=tmp_path)
    assert done.returncode != 0 and "no tile book" in done.stderr and "Traceback" not in done.stderr
