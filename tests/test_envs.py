"""The NES Gymnasium env on the real emulator: API, registration, checker, determinism, frame-skip."""
from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from smbwm import actions as A
import smbwm.envs  # noqa: F401 - registers the smbwm/ ids
from smbwm.envs.emulator_env import EmulatorError
from smbwm.envs.smb_env import SuperMarioBrosGym
from smbwm.stages import ALL_STAGES, expand_stages, parse_stage

INFO_KEYS = {"x_pos", "y_pos", "world", "stage", "life", "coins", "time", "status", "flag_get"}


def _play(env, actions, seed=0):
    obs, info = env.reset(seed=seed)
    frames, infos, rewards = [obs], [info], []
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        frames.append(obs); infos.append(info); rewards.append(r)
        if term or trunc:
            break
    return frames, infos, rewards


def test_make_reset_step_api():
    env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    try:
        obs, info = env.reset(seed=0)
        assert obs.shape == (240, 256, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
        assert INFO_KEYS <= set(info) and info["world"] == 1 and info["stage"] == 1 and info["x_pos"] == 40
        assert env.action_space.contains(0x81) and not env.action_space.contains(256)
        out = env.step(A.to_byte(["right", "B"]))
        assert len(out) == 5
        obs2, reward, terminated, truncated, info2 = out
        assert isinstance(reward, float) and terminated is False and truncated is False
        assert obs2.shape == (240, 256, 3) and info2["x_pos"] >= 40
        with pytest.raises(ValueError, match="0..255"):
            env.step(300)
    finally:
        env.close()


def test_every_level_is_registered_and_plays_that_level():
    ids = {f"smbwm/SuperMarioBros-{lv}-v0" for lv in ALL_STAGES}
    ids |= {"smbwm/SuperMarioBros-v0", "smbwm/SuperMarioBrosRandomStages-v0"}
    assert ids <= set(gymnasium.registry)
    env = gymnasium.make("smbwm/SuperMarioBros-8-4-v0")
    _, info = env.reset()
    assert (info["world"], info["stage"], info["level"]) == (8, 4, "8-4")
    env.close()


def test_random_stages_follow_the_seed():
    env = SuperMarioBrosGym(stages="world2")
    seen = [env.reset(seed=s)[1]["level"] for s in range(4)]
    again = [env.reset(seed=s)[1]["level"] for s in range(4)]
    env.close()
    assert seen == again and set(seen) <= {"2-1", "2-2", "2-3", "2-4"}


def test_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env
    env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


def test_same_seed_same_actions_same_frames():
    rng = np.random.default_rng(0)
    acts = [int(a) for a in rng.choice(A.SIMPLE_MOVEMENT, size=120)]
    runs = []
    for _ in range(2):
        env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
        runs.append(_play(env, acts))
        env.close()
    (f1, i1, r1), (f2, i2, r2) = runs
    assert len(f1) == len(f2) > 100
    assert all(np.array_equal(a, b) for a, b in zip(f1, f2))
    assert [i["x_pos"] for i in i1] == [i["x_pos"] for i in i2] and r1 == r2
    # the trap: kept frames must be copies, not views of the emulator's buffer
    assert not np.array_equal(f1[0], f1[-1])
    assert len({f.tobytes() for f in f1}) > len(f1) // 4


def test_frame_skip_4_equals_four_single_frames():
    acts = [A.to_byte(["right"])] * 10 + [A.to_byte(["right", "A"])] * 6 + [A.NOOP] * 4
    env1, env4 = SuperMarioBrosGym("1-1", frame_skip=1), SuperMarioBrosGym("1-1", frame_skip=4)
    f4, _, r4 = _play(env4, acts)
    f1, _, r1 = _play(env1, [a for a in acts for _ in range(4)])
    env1.close(); env4.close()
    assert len(f4) == len(acts) + 1 and len(f1) == 4 * len(acts) + 1
    for t in range(len(acts) + 1):
        assert np.array_equal(f4[t], f1[4 * t]), f"step {t}"
    assert np.isclose(sum(r4), sum(r1))


def test_time_limit_truncates_and_step_needs_reset():
    env = SuperMarioBrosGym("1-1", max_episode_steps=5)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    flags = [env.step(0)[3] for _ in range(5)]
    assert flags == [False] * 4 + [True]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.close()


def test_dead_emulator_is_a_clear_error():
    env = SuperMarioBrosGym("1-1")
    env.reset()
    env._nes.close()          # the emulator dies under the env
    with pytest.raises(EmulatorError, match="no longer running"):
        env.step(0)
    env._nes_by_level.clear()
    env.close()


def test_level_parsing():
    assert parse_stage("4-2") == (4, 2)
    assert expand_stages("world3") == ["3-1", "3-2", "3-3", "3-4"]
    assert expand_stages(["1-1", "world8"])[-1] == "8-4" and len(expand_stages("all")) == 32
    with pytest.raises(ValueError, match="WORLD-STAGE"):
        parse_stage("9-1")
