"""LevelEnv: the NES-look renderer, the physics, the A* expert and collecting MarioGPT levels."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import run_collect

from smbwm.envs.level_env import LevelEnv, spawn_from_level
from smbwm.envs.level_render import NES_PALETTE, SKY
from smbwm.utils.config_errors import ConfigError

RIGHT, RUN, JUMP = 0x80, 0x82, 0x01


def level(*features: str, width: int = 40, ground: str | None = None) -> str:
    """A 14-row level: sky, two rows of ground (`ground` overrides the bottom rows' pattern), and
    features as 'row,col,text' written into the rows."""
    rows = [["-"] * width for _ in range(12)] + [list(ground or "X" * width) for _ in range(2)]
    for f in features:
        r, c, text = f.split(",", 2)
        for i, ch in enumerate(text):
            rows[int(r)][int(c) + i] = ch
    return "\n".join("".join(r) for r in rows)


def run(env: LevelEnv, action: int, steps: int):
    info = {}
    for _ in range(steps):
        obs, reward, term, trunc, info = env.step(action)
        if term or trunc:
            return obs, reward, term, info
    return obs, reward, False, info


def test_frame_matches_the_real_emulator_and_scrolls():
    import gymnasium
    import smbwm.envs  # noqa: F401 - registers the smbwm ids
    real_env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    real, _ = real_env.reset(seed=0)
    real_env.close()
    flat, _ = LevelEnv(level_text=level(width=60)).reset(seed=0)
    assert flat.shape == (240, 256, 3) and flat.dtype == np.uint8
    assert tuple(NES_PALETTE[SKY]) == tuple(real[100, 10])           # the emulator's sky blue
    # flat ground looks exactly like the start of the real 1-1: sky, ground, hills, bushes, clouds,
    # Mario and the HUD words; only the HUD's second line (world name, digits) may differ
    np.testing.assert_array_equal(flat[:24], real[:24])
    np.testing.assert_array_equal(flat[32:], real[32:])
    env = LevelEnv(level_text=level("5,14,<>", width=60))                      # a floating pipe top
    obs, info = env.reset(seed=0)
    pipe_x = lambda frame: int(np.argmax((frame[16 + 5 * 16 + 8] != NES_PALETTE[SKY]).any(-1)))  # noqa: E731
    assert pipe_x(obs) == 14 * 16
    obs2, _, _, info2 = run(env, RIGHT, 50)
    assert info2["camera_x"] > 0 and info2["x_pos"] - info2["camera_x"] == 112   # camera follows past the middle
    assert pipe_x(obs2) == 14 * 16 - info2["camera_x"]
    _, _, _, info3 = run(env, 0x40, 20)                                           # skid, then walk back ...
    _, _, _, info4 = run(env, 0x40, 40)
    assert info4["camera_x"] == info3["camera_x"] >= info2["camera_x"]           # ... the camera never scrolls back
    assert info4["x_pos"] == info4["camera_x"]                                   # the screen's left edge stops Mario


def test_falls_into_a_gap_and_dies():
    env = LevelEnv(level_text=level(ground="XXXXXX" + "-" * 4 + "X" * 30))
    _, reward, terminated, info = run(env.reset(seed=0) and env, RIGHT, 100)
    assert terminated and info["death"] == "gap" and info["life"] == 1 and not info["flag_get"]
    assert reward < -10                                                           # the death penalty


def test_lands_on_ground_after_a_jump_and_a_drop():
    env = LevelEnv(level_text=level("11,0,XXXXXX", "10,0,XXXXXX"))
    _, info = env.reset(seed=0)
    assert info["y_pos"] == 255 - 144                                            # standing on the ledge
    _, _, _, jumping = run(env, JUMP, 5)
    assert jumping["y_pos"] > info["y_pos"] + 10
    _, _, term, landed = run(env, RIGHT, 60)                                     # off the ledge to the ground
    assert not term and landed["y_pos"] == 79 and env.state.mario.on_ground


def test_cannot_walk_through_a_pipe():
    env = LevelEnv(level_text=level("9,8,<>", "10,8,[]", "11,8,[]"))
    env.reset(seed=0)
    _, _, term, info = run(env, RUN, 80)
    assert not term and info["x_pos"] + 13 <= 8 * 16 and info["y_pos"] == 79


def test_stomps_a_goomba_and_dies_from_its_side():
    env = LevelEnv(level_text=level("11,12,E"))
    env.reset(seed=0)
    _, _, term, info = run(env, RIGHT, 200)                                      # walk into it
    assert term and info["death"] == "enemy"
    env.reset(seed=0)
    s = env.clone_state()
    goomba = s.enemies[0]
    goomba[4] = 1                                                                 # awake
    s.mario.x, s.mario.y, s.mario.vy, s.mario.on_ground = goomba[0], goomba[1] - 14, 2.0, False
    env.restore_state(s)
    _, _, term, info = run(env, 0, 1)
    assert not term and env.state.enemies[0][4] == 2 and info["score"] == 100 and env.state.mario.vy < 0


def test_question_blocks_give_coins_and_clone_restore_is_exact():
    env = LevelEnv(level_text=level("8,3,?", "9,10,ooo"))
    env.reset(seed=0)
    _, _, _, info = run(env, JUMP, 12)
    assert info["coins"] == 1 and chr(env.state.tiles[8 * env.state.width + 3]) == "U"
    saved = env.clone_state()
    actions = [RUN, RUN | JUMP, RUN | JUMP, RUN, 0, RUN] * 5
    first = [env.step(a)[0] for a in actions]
    env.restore_state(saved)
    second = [env.step(a)[0] for a in actions]
    assert all((a == b).all() for a, b in zip(first, second))


def test_expert_finishes_a_simple_level():
    from smbwm.agents.expert import ExpertAgent
    text = level("8,18,?", "11,11,<>", "12,11,[]", "12,21,E", ground="X" * 22 + "---" + "X" * 15)
    env = LevelEnv(level_text=text)
    agent = ExpertAgent(seed=0)
    agent.bind(env)
    obs, info = env.reset(seed=0)
    agent.reset(0)
    for _ in range(300):
        obs, _, term, trunc, info = env.step(agent.act(obs, info))
        if term or trunc:
            break
    assert info["flag_get"] and not info["death"]
    assert agent.summary()["plans"] >= 1


def test_expert_refuses_other_envs():
    import gymnasium
    from smbwm.agents.expert import ExpertAgent
    with pytest.raises(ConfigError, match="env=levels"):
        ExpertAgent().bind(gymnasium.make("CartPole-v1"))


def test_collector_writes_episodes_with_level_text(tmp_path):
    from smbwm.data.episode import list_episodes, read_episode
    path = tmp_path / "simple.txt"
    path.write_text(level("11,11,<>", "12,11,[]") + "\n")
    out = tmp_path / "episodes"
    report = run_collect(["env=levels", "agent=expert", f"level_file={path}", "episodes=1", "max_steps=150",
                          f"out_dir={out}"])
    assert report["episodes_written"] == 1 and report["flag_rate"] == 1.0
    run_collect(["env=levels", "agent=random", "level=corpus", "episodes=1", "max_steps=20", f"out_dir={out}"])
    eps = [read_episode(p) for p in list_episodes(out)]
    assert len(eps) == 2
    for ep in eps:
        assert ep.frames.shape == (len(ep) + 1, 240, 256, 3) and ep.level_text.count("\n") >= 13
    expert = [e for e in eps if e.attrs["source"] == "levels/expert"][0]
    assert expert.level_text.strip() == path.read_text().strip() and expert.attrs["level"].startswith("gpt:")
    assert expert.terminated[-1] and expert.info["flag_get"][-1] == 1
    corpus = [e for e in eps if e.attrs["source"] == "levels/random"][0]
    assert corpus.attrs["level"].startswith("corpus:")


def test_bad_level_is_one_clear_error():
    with pytest.raises(ValueError, match="rows"):
        LevelEnv(level_text="XX\nXX")
    with pytest.raises(ValueError, match="unknown level"):
        LevelEnv(level="2-7-9")


def test_gymnasium_env_checker_passes():
    from gymnasium.utils.env_checker import check_env
    check_env(LevelEnv(level_text=level("11,12,E")), skip_render_check=True)


def test_spawn_from_level(tmp_path):
    from smbwm.data.spawn import load_spawn
    text = level("11,11,<>", "12,11,[]")
    spawn = load_spawn(spawn_from_level(text, tmp_path / "spawn"))
    assert spawn.full_res.shape == (4, 240, 256, 3) and spawn.meta["level_text"] == LevelEnv(level_text=text).level_text
    assert (tmp_path / "spawn" / "level.txt").read_text().strip() == text.strip()


def test_varied_prompts_are_valid_and_level_files_resolve(tmp_path):
    from smbwm.envs.level_sources import level_files, varied_prompts
    from smbwm.levels.prompts import parse_prompt
    prompts = varied_prompts(30, seed=0)
    assert len(set(prompts)) > 10 and all(str(parse_prompt(p)) == p for p in prompts)
    (tmp_path / "a.txt").write_text(level())
    (tmp_path / "b.txt").write_text(level())
    assert [p.endswith(("a.txt", "b.txt")) for p in level_files(tmp_path)] == [True, True]
    with pytest.raises(ValueError, match="does not exist"):
        level_files(tmp_path / "missing.txt")


def test_registered_with_gymnasium():
    import gymnasium
    import smbwm.envs  # noqa: F401 - registers the smbwm/ ids
    env = gymnasium.make("smbwm/MarioGPTLevels-v0")
    obs, info = env.reset(seed=0)
    assert obs.shape == (240, 256, 3) and "x_pos" in info
    env.close()
