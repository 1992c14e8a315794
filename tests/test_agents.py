"""Agents on the real emulator: legal bytes from every configured agent, the balanced histogram, the
scripted runner's progress on 1-1."""
from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from hydra.utils import instantiate

from smbwm import actions as A
import smbwm.envs  # noqa: F401 - registers the smbwm/ ids
from smbwm.agents.random_agent import BalancedAgent, RandomAgent
from smbwm.agents.scripted import ScriptedAgent
from conftest import compose


def _run(env, agent, seed: int, steps: int) -> tuple[list[int], int]:
    obs, info = env.reset(seed=seed)
    agent.reset(seed=seed)
    taken, max_x = [], int(info["x_pos"])
    for _ in range(steps):
        a = agent.act(obs, info)
        taken.append(a)
        obs, _, term, trunc, info = env.step(a)
        max_x = max(max_x, int(info["x_pos"]))
        if term or trunc:
            break
    return taken, max_x


@pytest.mark.parametrize("name", ["random", "balanced", "scripted"])
def test_configured_agents_produce_legal_bytes(name):
    agent = instantiate(compose("collect", [f"agent={name}"]).agent, seed=3)
    env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    agent.bind(env)
    taken, _ = _run(env, agent, seed=3, steps=150)
    env.close()
    assert len(taken) >= 30
    assert all(isinstance(a, int) and 0 <= a <= 255 for a in taken)
    assert set(taken) <= set(agent.actions), f"{name} left its action set: {set(taken) - set(agent.actions)}"
    assert abs(sum(agent.histogram().values()) - 1) < 1e-9


def test_random_agent_holds_actions_and_follows_its_seed():
    a, b = RandomAgent(hold=(3, 3), seed=0), RandomAgent(hold=(3, 3), seed=0)
    xs = [a.act(None, {}) for _ in range(60)]
    assert xs == [b.act(None, {}) for _ in range(60)]
    assert all(xs[i] == xs[i + 1] == xs[i + 2] for i in range(0, 60, 3))
    with pytest.raises(ValueError):
        RandomAgent(hold=0)


def test_balanced_histogram_stays_within_bounds():
    """Long holds make plain random play lopsided; the balanced agent's forced bursts keep every
    action's share within [min_share, max_share] x uniform."""
    lo, hi, n = 0.5, 2.0, len(A.SIMPLE_MOVEMENT)
    worst_random = []
    for seed in range(5):
        bal = BalancedAgent(hold=(10, 30), min_share=lo, max_share=hi, seed=seed)
        rnd = RandomAgent(hold=(10, 30), seed=seed)
        for _ in range(1000):
            bal.act(None, {}); rnd.act(None, {})
        shares = np.array([bal.histogram().get(A.name(a), 0.0) for a in A.SIMPLE_MOVEMENT]) * n
        assert lo <= shares.min() and shares.max() <= hi, f"seed {seed}: {bal.histogram()}"
        worst_random.append(min(rnd.histogram().get(A.name(a), 0.0) for a in A.SIMPLE_MOVEMENT) * n)
        assert bal.summary()["forced_bursts"] >= 0
    assert min(worst_random) < lo          # without balancing the bounds are really broken


def test_scripted_runner_moves_far_right_on_1_1(capsys):
    env = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    agent = ScriptedAgent(explore=0.05)
    agent.bind(env)
    max_xs = [_run(env, agent, seed=s, steps=400)[1] for s in range(3)]
    env.close()
    with capsys.disabled():
        print(f"\nscripted runner on 1-1 (explore 0.05, 3 episodes): max x_pos {max_xs}, mean {np.mean(max_xs):.0f}")
    assert np.mean(max_xs) > 1500       # well past the pipes and the first pits (Mario starts at 40)
    assert max(max_xs) > 2400           # past the stairs (the flag is at ~3160)


def test_multi_hot_table_is_each_bytes_playing_buttons():
    table = A.MULTI_HOT_TABLE
    assert table.shape == (256, A.NUM_PLAYING_BUTTONS) and table.dtype == np.float32
    right_b_a = A.to_byte(["right", "B", "A"])
    assert table[right_b_a].tolist() == [1, 0, 0, 0, 1, 1]          # right, left, down, up, B, A
    assert table[A.to_byte(["start", "select"])].sum() == 0          # never matter in play
    acts = np.array([[0, right_b_a], [A.to_byte(["left"]), 255]], np.uint8)
    np.testing.assert_array_equal(table[acts], A.multi_hot(acts))
    with pytest.raises(ValueError):
        table[0, 0] = 1.0                                            # shared: read-only
