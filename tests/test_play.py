"""The pygame player (src/play.py): keys, headless runs on the real emulator and on a tiny trained
world model, recording, compare mode, and the one-line errors. SDL runs with its dummy video driver."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

os.environ["SDL_VIDEODRIVER"] = "dummy"

from smbwm import actions as A  # noqa: E402
from smbwm.data.episode import list_episodes, read_episode  # noqa: E402
from smbwm.data.spawn import list_spawns, load_spawn  # noqa: E402
from smbwm.game.config import PlayError, parse_args  # noqa: E402
from smbwm.game.run import read_action_file, speed_note  # noqa: E402
from smbwm.models.sampler import load_sampler  # noqa: E402

RIGHT, LEFT, RUN_JUMP_RIGHT = 0x80, 0x40, 0x83


def play(*args: str) -> int:
    from play import main
    return main([str(a) for a in args])


def play_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, str(ROOT / "src" / "play.py"), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=300, cwd=ROOT)


def action_file(path: Path, actions: list[int]) -> Path:
    path.write_text("# NES bytes, one per line\n" + "\n".join(map(str, actions)) + "\n")
    return path


def assert_one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def spawn_dir(tiny_spawns) -> Path:
    """One spawn made from a real emulator episode (it carries the replay that brings the emulator there)."""
    return list_spawns(tiny_spawns)[0]


@pytest.fixture
def tiny(tiny_checkpoint) -> list[str]:
    """Flags for the tiny model; 1 torch thread (a 16-channel net is all OpenMP overhead with 2: measured
    837 vs 33 ms of CPU per step on this loaded machine), restored afterwards for other tests."""
    import torch
    before = torch.get_num_threads()
    yield ["--checkpoint", str(tiny_checkpoint), "--threads", "1"]
    torch.set_num_threads(before)


# --- keys ----------------------------------------------------------------------------------------
def test_keymap_buttons_combine_and_opposites_cancel():
    import pygame
    from smbwm.game.keymap import KeyMap
    pygame.init()
    km = KeyMap().resolve(pygame.key.key_code)
    held = lambda *names: (lambda code: code in {pygame.key.key_code(n) for n in names})  # noqa: E731
    assert km.byte_from_held(held("right", "z", "x")) == A.to_byte(["right", "A", "B"])
    assert km.byte_from_held(held("d", "space", "left shift")) == A.to_byte(["right", "A", "B"])
    assert km.byte_from_held(held("a", "k", "j")) == A.to_byte(["left", "A", "B"])
    assert km.byte_from_held(held("left", "right", "z")) == A.to_byte(["A"])
    assert km.byte_from_held(held("w")) == A.to_byte(["up"]) and km.byte_from_held(held()) == A.NOOP
    assert km.control_for_key(pygame.K_RETURN) == "reset" and km.control_for_key(pygame.K_TAB) == "switch"
    assert km.control_for_key(pygame.K_n) == "switch" and km.control_for_key(pygame.K_p) == "pause"
    assert km.control_for_key(pygame.K_PERIOD) == "step" and km.control_for_key(pygame.K_ESCAPE) == "quit"


def test_action_file_and_flag_errors(tmp_path):
    assert read_action_file(action_file(tmp_path / "a.txt", [128, 131, 0])) == [128, 131, 0]
    (tmp_path / "bad.txt").write_text("128\nright\n")
    with pytest.raises(PlayError, match="line 2"):
        read_action_file(tmp_path / "bad.txt")
    (tmp_path / "big.txt").write_text("300\n")
    with pytest.raises(PlayError, match="0..255"):
        read_action_file(tmp_path / "big.txt")
    for argv, msg in ((["--real", "--compare"], "exclude"), (["--headless"], "--out"), (["--fps", "0"], "--fps"),
                      (["--level", "9-9"], "--level"), (["--headless", "--out", "x", "--actions", "nope"], "no such file"),
                      (["--mario-retries", "-1"], "--mario-retries"), (["--tile-snap", "65"], "--tile-snap"), (["--hud-snap", "-2"], "--hud-snap"), (["--display-snap", "65"], "--display-snap"),
                      (["--camera-follow", "-1"], "--camera-follow"),
                      (["--reuse-deep", "-1"], "--reuse-deep"),
                      (["--lost-end-steps", "-1"], "--lost-end-steps")):
        with pytest.raises(PlayError, match=msg):
            parse_args(argv)


# --- real emulator -------------------------------------------------------------------------------
def test_real_headless_records_human_episode_matching_the_emulator(tmp_path):
    import gymnasium
    import smbwm.envs  # noqa: F401
    acts = [RIGHT] * 10 + [RUN_JUMP_RIGHT] * 10 + [LEFT] * 15
    rec = tmp_path / "rec"
    assert play("--real", "--headless", "--frames", 35, "--actions", action_file(tmp_path / "a.txt", acts),
                "--out", tmp_path / "out", "--record", rec) == 0
    frames = np.load(tmp_path / "out" / "frames.npy")
    assert frames.shape == (35, 240, 256, 3) and frames.dtype == np.uint8
    stats = json.loads((tmp_path / "out" / "play_stats.json").read_text())
    assert stats["fps"] > 0 and stats["steps"] == 35 and stats["settings"]["mode"] == "real"
    assert (tmp_path / "out" / "frames.gif").stat().st_size > 0
    [path] = list_episodes(rec)
    ep = read_episode(path)
    assert ep.attrs["source"] == "nes/human" and ep.attrs["level"] == "1-1"
    assert list(ep.actions) == acts and ep.truncated[-1] and not ep.terminated.any()
    np.testing.assert_array_equal(ep.frames[1:], frames)
    env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    env.reset(seed=0)
    for t, a in enumerate(acts):          # the player shows exactly what the emulator computes
        obs = env.step(a)[0]
        np.testing.assert_array_equal(obs, frames[t])
    env.close()
    x = ep.info["x_pos"]
    assert x.max() > x[0] + 50 and x[-1] < x.max()      # ran right, then walked back left


def test_keyboard_presses_latch_into_one_combined_step(tmp_path):
    import pygame
    from smbwm.game.player import Player
    from smbwm.game.render import Renderer
    from smbwm.game.session import Session
    cfg = parse_args(["--real", "--scale", "1"])
    session = Session(cfg)
    renderer = Renderer(session.sides, 1)
    try:
        player = Player(session, renderer, fps=60)
        for key in (pygame.K_RIGHT, pygame.K_z, pygame.K_LSHIFT):   # tapped: down and up before the step
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
            pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=0, unicode="", scancode=0))
        log = player.run(max_steps=2)
        assert log.actions[0] == A.to_byte(["right", "A", "B"]) and log.actions[1] == A.NOOP
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode="", scancode=0))
        player2 = Player(session, renderer, fps=60)
        assert player2.run().steps == 0          # Esc quits the loop
    finally:
        renderer.close()
        session.close()


# --- errors --------------------------------------------------------------------------------------
def test_bad_spawn_checkpoint_and_files_give_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad_spawn"
    bad.mkdir()
    np.save(bad / "full_res.npy", np.zeros((4, 120, 128, 3), np.uint8))
    np.save(bad / "act.npy", np.zeros(4, np.uint8))
    # The command line as a user runs it (once as a real process), then the same entry point in-process.
    assert_one_line_error(play_cli("--real", "--spawn", bad, "--headless", "--frames", 2, "--out", tmp_path / "o"),
                          "full_res.npy", "src/dataset.py spawn")
    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"not a checkpoint")
    cases = [(["--spawn", tmp_path / "missing"], ("no such folder", "src/dataset.py spawn")),
             (["--checkpoint", tmp_path / "nope"], ("--checkpoint", "src/main.py")),
             (["--checkpoint", broken], ("no world-model checkpoint", "src/main.py")),
             (["--real", "--spawn", 99], ("--spawn 99", "src/dataset.py spawn"))]
    for argv, needles in cases:
        capsys.readouterr()
        code = play(*argv, "--headless", "--out", tmp_path / "o")
        assert_one_line_error(subprocess.CompletedProcess(argv, code, "", capsys.readouterr().err), *needles)


# --- the dream (a tiny world model trained by the test session) ----------------------------------
def test_dream_headless_frames_and_actions_matter(tiny, spawn_dir, tmp_path):
    outs = {}
    for name, byte in (("right", RUN_JUMP_RIGHT), ("left", LEFT)):
        out = tmp_path / name
        assert play(*tiny, "--spawn", spawn_dir, "--headless", "--frames", 6,
                    "--actions", action_file(tmp_path / f"{name}.txt", [byte]), "--out", out,
                    "--sampler", "fast") == 0
        outs[name] = np.load(out / "frames.npy")
        assert outs[name].shape == (6, 240, 256, 3) and outs[name].dtype == np.uint8
        stats = json.loads((out / "play_stats.json").read_text())
        assert stats["fps"] > 0 and stats["settings"]["mode"] == "dream" and stats["settings"]["sampler"] == "fast"
        assert stats["mario_retries"] == 0                                    # the preset's: `fast` has no check
    assert not np.array_equal(outs["right"], outs["left"])


def test_a_dream_below_game_speed_says_why_in_one_line(tiny, spawn_dir, tmp_path, capsys):
    from smbwm.utils.device import cpu_has_bf16
    out = tmp_path / "slow"
    assert play(*tiny, "--spawn", spawn_dir, "--headless", "--frames", 4, "--actions", "random", "--out", out,
                "--backend", "torch", "--fps", 100000) == 0           # no CPU plays 100,000 steps/s
    stats = json.loads((out / "play_stats.json").read_text())
    assert stats["backend"] == "torch" and stats["precision"] == "fp32" and stats["device"] == "cpu"
    notes = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("the dream ran at")]
    assert len(notes) == 1 and "of 100000 steps/s" in notes[0] and "fp32 (torch, 1 thread)" in notes[0]
    assert ("no bf16 units" in notes[0]) == (not cpu_has_bf16())
    # the same stats at game speed, on either kind of CPU, on a busy machine, and for the real game alone
    assert speed_note({**stats, "fps": 15.0}, 15) is None
    assert "no bf16 units" in speed_note(stats, 100000, has_bf16=False)
    assert "--backend openvino" in speed_note(stats, 100000, has_bf16=True)
    assert "bf16 units" not in speed_note({**stats, "precision": "bf16", "backend": "openvino"}, 100000)
    busy = speed_note({**stats, "load_average": [9.0, 9.0, 9.0], "torch_threads": 2}, 100000, cores=2)
    assert "load 9.0 on 2 cores" in busy and "--threads 1" in busy
    assert "--threads 1" not in speed_note({**stats, "load_average": [9.0, 9.0, 9.0]}, 100000, cores=2)
    assert speed_note({**stats, "backend": None}, 100000) is None


def test_dream_records_a_valid_episode(tiny, spawn_dir, tmp_path):
    from smbwm.game.run import action_stream
    rec = tmp_path / "rec"
    argv = [*tiny, "--spawn", spawn_dir, "--headless", "--frames", 5, "--actions", "random",
            "--seed", 3, "--out", tmp_path / "out", "--record", rec, "--mario-retries", 1, "--tile-snap", 7, "--hud-snap", 5,
            "--display-snap", 9, "--camera-follow", 6, "--reuse-deep", 2]
    assert play(*argv) == 0
    stats = json.loads((tmp_path / "out" / "play_stats.json").read_text())
    assert stats["reuse_deep"] == 2 and stats["mario_retries"] == 1 and stats["mario_rescue"] == load_sampler().mario_rescue
    assert stats["mario_rescue_steps"] == load_sampler().mario_rescue_steps and stats["tile_snap"] == 7 and stats["hud_snap"] == 5
    assert stats["display_snap"] == 9 and stats["camera_follow"] == 6
    [path] = list_episodes(rec)
    ep = read_episode(path)
    assert ep.attrs["source"] == "dream/human" and ep.attrs["denoising_steps"] >= 1 and len(ep) == 5
    assert ep.truncated[-1] and not ep.terminated.any()
    np.testing.assert_array_equal(ep.frames[0], load_spawn(spawn_dir).full_res[-1])   # starts at the spawn
    np.testing.assert_array_equal(ep.frames[1:], np.load(tmp_path / "out" / "frames.npy"))
    stream = action_stream(parse_args([str(a) for a in argv]))
    assert list(ep.actions) == [next(stream) for _ in range(5)]


def test_a_reuse_the_checkpoint_cannot_run_is_one_line(tiny, spawn_dir, tmp_path):
    res = play_cli(*tiny, "--spawn", spawn_dir, "--headless", "--frames", 2, "--out", tmp_path, "--reuse-deep", 9)
    assert_one_line_error(res, "--reuse-deep", "0..4")


def test_a_dream_that_loses_mario_starts_again(tiny, spawn_dir, tmp_path):
    """The tiny model draws no sharp Mario after a few steps: with --lost-end-steps 2 its episodes end
    ("mario_lost") and play starts again from the spawn; with --no-end it plays on."""
    out, acts = tmp_path / "lost", action_file(tmp_path / "a.txt", [RIGHT])
    assert play(*tiny, "--spawn", spawn_dir, "--headless", "--frames", 24, "--actions", acts,
                "--out", out, "--lost-end-steps", 2) == 0
    stats = json.loads((out / "play_stats.json").read_text())
    assert stats["settings"]["lost_end_steps"] == 2
    assert stats["episode_ends"].get("mario_lost", 0) >= 1 and stats["episodes_started"] >= 2
    assert play(*tiny, "--spawn", spawn_dir, "--headless", "--frames", 24, "--actions", acts,
                "--out", out, "--lost-end-steps", 2, "--no-end") == 0
    stats = json.loads((out / "play_stats.json").read_text())
    assert stats["episode_ends"] == {} and stats["episodes_started"] == 1


def test_compare_advances_both_sides_from_the_same_state(tiny, spawn_dir, tmp_path):
    out = tmp_path / "cmp"
    acts = [RIGHT] * 8
    assert play(*tiny, "--spawn", spawn_dir, "--compare", "--headless", "--frames", 8,
                "--actions", action_file(tmp_path / "a.txt", acts), "--out", out) == 0
    dream, real = np.load(out / "frames.npy"), np.load(out / "real_frames.npy")
    assert dream.shape == real.shape == (8, 240, 256, 3)
    assert not np.array_equal(real[0], real[-1]) and not np.array_equal(dream[0], dream[-1])
    # The real side started from the spawn's state: its first step follows the spawn's last frame.
    import gymnasium
    import smbwm.envs  # noqa: F401
    spawn = load_spawn(spawn_dir)
    env = gymnasium.make(f"smbwm/SuperMarioBros-{spawn.meta['level']}-v0")
    env.reset()
    for a in spawn.replay_actions + acts[:1]:
        obs = env.step(a)[0]
    env.close()
    np.testing.assert_array_equal(obs, real[0])
    gif = out / "frames.gif"
    from PIL import Image
    assert Image.open(gif).size == (512, 240)
