"""The Modular Mind policy: numpy/torch agreement, features from the real emulator, REINFORCE on a
toy objective, the shipped weights, explore=1 uniformity, collection, the degeneracy guard, training
end to end (smoke schedule) and the picture of its mind."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from smbwm import actions as A
from smbwm.agents.modular_mind import (DEFAULT_WEIGHTS, ModularMindAgent, default_spec, forward, init_params, input_size,
                                 load_npz, n_params, save_npz)
from conftest import ROOT, compose, run_collect
from smbwm.envs.smb_env import SuperMarioBrosGym
from smbwm.agents.mind_features import GROUPS, N_STATE_FEATURES, features_from_ram, features_from_state, state_from_level
from smbwm.policy.model import ModularMind
from smbwm.policy.reinforce import LossConfig, degenerate, reinforce_step
from smbwm.policy.rollout import RewardConfig, Trajectory, play


@pytest.fixture(scope="module")
def env_1_1():
    env = SuperMarioBrosGym(level="1-1")
    yield env
    env.close()


def _real_inputs(env, n: int = 40) -> np.ndarray:
    """Inputs from a real episode of the scripted-free default policy (random init)."""
    spec = default_spec()
    agent = ModularMindAgent(params=init_params(spec, seed=1), spec=spec, explore=0.3, seed=1)
    obs, info = env.reset(seed=1)
    xs = []
    for _ in range(n):
        obs, _, term, trunc, info = env.step(agent.act(obs, info))
        xs.append(agent.last_input)
        if term or trunc:
            break
    return np.stack(xs)


def test_numpy_and_torch_forward_agree(env_1_1):
    spec = default_spec()
    params = init_params(spec, seed=3)
    for k in params:                                        # non-trivial weights everywhere (zeros hide bugs)
        params[k] = params[k] + np.random.default_rng(len(k)).normal(0, 0.3, params[k].shape).astype(np.float32)
    x = np.concatenate([_real_inputs(env_1_1), np.random.default_rng(0).normal(size=(16, input_size(spec)))]).astype(np.float32)
    ref = forward(params, spec, x)
    out = ModularMind(spec, params)(torch.from_numpy(x))
    for key in ("logits", "value", "latent", "gates"):
        np.testing.assert_allclose(out[key].detach().numpy(), ref[key], rtol=1e-4, atol=1e-5, err_msg=key)
    for h_t, h_n in zip(out["hidden"], ref["hidden"]):
        np.testing.assert_allclose(h_t.detach().numpy(), h_n, rtol=1e-4, atol=1e-5)
    back = ModularMind(spec, params).numpy_params()
    assert set(back) == set(params) and all(np.array_equal(back[k], params[k]) for k in params)


def test_shapes_and_parameter_count():
    spec = default_spec()
    params = init_params(spec)
    assert 1_000 < n_params(params) < 20_000                 # thousands, not millions
    out = forward(params, spec, np.zeros((5, input_size(spec)), np.float32))
    n_act = len(spec["actions"])
    assert out["logits"].shape == (5, n_act) and out["value"].shape == (5,)
    assert out["latent"].shape == (5, spec["latent"]) and out["gates"].shape == (5, 3)   # runner, jumper, cautious own
    assert [h.shape for h in out["hidden"]] == [(5, spec["hidden"])] * len(spec["specialists"])
    with pytest.raises(ValueError, match="2048-byte"):
        features_from_ram(np.zeros(100, np.uint8))


def test_features_from_real_ram(env_1_1):
    _, info = env_1_1.reset(seed=0)
    f = features_from_ram(info["ram"])
    assert f.shape == (N_STATE_FEATURES,) and f.dtype == np.float32
    assert f[GROUPS["motion"]][3] == 1.0                     # standing on the ground at the start of 1-1
    assert not f[GROUPS["gaps"]].any()                        # solid floor ahead at the start
    assert f[GROUPS["terrain"]].any()                         # and the ground shows in the tile grid


def test_level_env_adapter_gives_the_emulators_features(env_1_1):
    """Standing at the start of flat ground, the MarioGPT simulator and the emulator's 1-1 look the
    same to the policy; a pit ahead shows in the gap features; the agent plays the simulator."""
    level_env = pytest.importorskip("smbwm.envs.level_env")
    _, info = env_1_1.reset(seed=0)
    nes = features_from_ram(info["ram"])
    flat = "\n".join(["-" * 40] * 13 + ["X" * 40])
    env = level_env.LevelEnv(level_text=flat)
    env.reset(seed=0)
    np.testing.assert_allclose(features_from_state(state_from_level(env.state)), nes, atol=1e-6)
    pit = "\n".join(["-" * 40] * 13 + ["X" * 8 + "---" + "X" * 29])
    env = level_env.LevelEnv(level_text=pit, max_episode_steps=60)
    obs, info = env.reset(seed=0)
    gaps = features_from_state(state_from_level(env.state))[GROUPS["gaps"]]
    assert gaps.tolist() == [0, 0, 0, 0, 0, 1, 1]               # pit columns 8-10; Mario's centre is in column 3
    agent = ModularMindAgent(tier="normal", seed=0)
    agent.bind(env)
    agent.reset(seed=0)
    for _ in range(60):
        obs, _, term, trunc, info = env.step(agent.act(obs, info))
        if term or trunc:
            break
    assert len(agent.counts) and set(agent.counts) <= set(agent.actions)
    with pytest.raises(ValueError, match="not a level simulator state"):
        state_from_level(object())


def test_reinforce_improves_a_toy_objective():
    """A one-step bandit on random inputs: reward 1 for the jumper's right+A, 0 for anything else.
    Starting from the init (which favours the runner's right+B), REINFORCE must make right+A likely."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    spec = default_spec()
    model = ModularMind(spec, init_params(spec, seed=0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    jump = spec["actions"].index(A.to_byte(["right", "A"]))
    probe = torch.from_numpy(rng.uniform(0, 1, (1024, input_size(spec))).astype(np.float32))

    def expected_reward() -> float:
        with torch.no_grad():
            return float(torch.softmax(model(probe)["logits"], -1)[:, jump].mean())

    before = expected_reward()
    cfg = LossConfig(gamma=0.0, entropy_coef=0.01, return_scale=1.0)
    for _ in range(60):
        x = rng.uniform(0, 1, (128, input_size(spec))).astype(np.float32)
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(x))["logits"], -1)
        a = torch.multinomial(p, 1, generator=gen)[:, 0].numpy()
        reinforce_step(model, opt, [Trajectory("toy", x, a.astype(np.int64), (a == jump).astype(np.float32))], cfg)
    after = expected_reward()
    assert before < 0.25 and after > 0.7, (before, after)


def test_shipped_weights_load_and_act_legally(env_1_1):
    path = ROOT / DEFAULT_WEIGHTS
    assert path.stat().st_size < 64_000
    params, spec, meta = load_npz(DEFAULT_WEIGHTS)
    assert 1_000 < n_params(params) < 20_000 and meta["mean_max_x"] > 0
    agent = ModularMindAgent(tier="expert", seed=0)
    obs, info = env_1_1.reset(seed=0)
    agent.reset(seed=0)
    taken, max_x = [], 0
    for _ in range(120):
        taken.append(agent.act(obs, info))
        obs, _, term, trunc, info = env_1_1.step(taken[-1])
        max_x = max(max_x, int(info["x_pos"]))
        if term or trunc:
            break
    assert set(taken) <= set(spec["actions"])
    assert max_x > 300                                        # a trained runner, not a stand-still policy


def test_a_held_on_the_ground_is_released_so_mario_jumps_again(env_1_1):
    """A policy that always asks for right+B+A: SMB jumps only on a press, so without the release
    rule Mario jumps once and then runs with A held; with it he keeps jumping."""
    spec = default_spec()
    params = init_params(spec)
    params["coord.b_c"][spec["actions"].index(A.to_byte(["right", "B", "A"]))] = 50.0

    def takeoffs(press_a: bool) -> tuple[int, set[int]]:
        agent = ModularMindAgent(params=params, spec=spec, explore=0.0, press_a=press_a, seed=0)
        obs, info = env_1_1.reset(seed=0)
        agent.reset(seed=0)
        n, was_grounded, sent = 0, True, set()
        for _ in range(150):
            byte = agent.act(obs, info)
            sent.add(byte)
            obs, _, term, trunc, info = env_1_1.step(byte)
            state = int(info["ram"][0x001D])                  # float state: 0 on the ground, 1 jumping
            n += was_grounded and state == 1 and not term        # (a death also reads as 1)
            was_grounded = state == 0
            if term or trunc:
                break
        return n, sent

    held, sent_held = takeoffs(press_a=False)
    pressed, sent_pressed = takeoffs(press_a=True)
    assert held == 1 and sent_held == {A.to_byte(["right", "B", "A"])}
    assert pressed >= 3 and sent_pressed == {A.to_byte(["right", "B", "A"]), A.to_byte(["right", "B"])}


def test_explore_one_is_uniform_over_legal_actions(env_1_1):
    _, info = env_1_1.reset(seed=0)
    spec = default_spec()
    agent = ModularMindAgent(params=init_params(spec), spec=spec, explore=1.0, seed=7)
    n = 7000
    taken = [agent.act(None, info) for _ in range(n)]
    counts = np.array([taken.count(b) for b in spec["actions"]])
    assert counts.sum() == n                                  # nothing outside the action set
    expected = n / len(counts)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 22.46, (counts, chi2)                      # chi-square, 6 dof, p = 0.001
    with pytest.raises(ValueError, match="explore"):
        ModularMindAgent(params=init_params(spec), spec=spec, explore=1.5)
    with pytest.raises(ValueError, match="unknown tier"):
        ModularMindAgent(params=init_params(spec), spec=spec, tier="godlike")


def test_collect_with_modular_mind_writes_valid_episodes(tmp_path):
    from smbwm.data.episode import list_episodes, read_episode
    report = run_collect(["agent=modular_mind", "agent.tier=erratic", "episodes=2", "max_steps=60",
                          "level=[1-1,1-2]", f"out_dir={tmp_path}", "seed=4"])
    files = list_episodes(tmp_path)
    assert report["episodes_written"] == 2 and len(files) == 2
    legal = set(load_npz(DEFAULT_WEIGHTS)[1]["actions"])
    for f in files:
        ep = read_episode(f)
        assert len(ep.frames) == len(ep.actions) + 1 and set(ep.actions.tolist()) <= legal
        assert ep.attrs["policy_tier"] == "erratic" and float(ep.attrs["policy_explore"]) == 0.3
        assert ep.attrs["source"] == "nes/modular_mind"


def test_standing_still_is_degenerate(env_1_1):
    spec = default_spec()
    params = init_params(spec)
    params["coord.b_c"][spec["actions"].index(A.NOOP)] = 50.0     # a policy that only waits
    agent = ModularMindAgent(params=params, spec=spec, explore=0.0, seed=0)
    trajs = [play(agent, "1-1", seed=s, rc=RewardConfig(stall_limit=20, max_steps=100), env=env_1_1) for s in range(2)]
    assert all(t.stalled for t in trajs)
    assert "stalled" in degenerate(trajs, len(spec["actions"]))


def test_elite_buffer_keeps_the_newest_of_equal_runs_and_weights_levels():
    from smbwm.policy.reinforce import EliteBuffer

    def run(level: str, max_x: int, flag: bool, tag: float, n: int = 20, died: bool = False) -> Trajectory:
        return Trajectory(level, np.full((n, 3), tag, np.float32), np.zeros(n, np.int64), np.zeros(n, np.float32),
                          max_x=max_x, flag=flag, died=died)

    buf = EliteBuffer(per_level=2, trim=5)
    buf.add([run("1-1", 3161, True, 1.0), run("1-1", 2000, False, 2.0, died=True), run("4-1", 900, False, 3.0)])
    buf.add([run("1-1", 3161, True, 4.0)])                  # a newer flag run displaces the older one's rank
    kept = buf.best["1-1"]
    assert [t.inputs[0, 0] for t in kept] == [4.0, 1.0]
    buf.add([run("4-1", 500, False, 5.0, died=True)])
    assert [len(t.actions) for t in buf.best["4-1"]] == [20, 15]   # a death loses its last `trim` steps
    assert len(buf.trajectories({"1-1": 3})) == 3 * 2 + 2


def test_weights_roundtrip_and_bad_file(tmp_path):
    spec = default_spec()
    params = init_params(spec, seed=2)
    save_npz(tmp_path / "m.npz", params, spec, note="x")
    p2, s2, meta = load_npz(tmp_path / "m.npz")
    assert s2 == spec and meta == {"note": "x"} and all(np.array_equal(p2[k], params[k]) for k in params)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a Modular Mind checkpoint"):
        load_npz(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="train them"):
        load_npz(tmp_path / "missing.npz")


@pytest.mark.slow
def test_train_policy_smoke_and_resume(tmp_path):
    from train_policy import train
    over = ["policy/schedule=smoke", "levels=[1-1]", "workers=1", "nice=0", f"run_dir={tmp_path}/run",
            f"output={tmp_path}/mm.npz", "reward.max_steps=80"]
    st = train(compose("policy", over))
    assert st["iteration"] == 2 and (tmp_path / "run" / "state.safetensors").exists()
    params, spec, meta = load_npz(tmp_path / "mm.npz")
    assert set(params) == set(init_params(spec)) and meta["levels"] == ["1-1"]
    st2 = train(compose("policy", over + ["policy.schedule.iterations=3"]))   # resumes: one more batch only
    assert st2["iteration"] == 3 and len(st2["history"]) == 3
    st3 = train(compose("policy", over[:-3] + [f"run_dir={tmp_path}/cont", f"output={tmp_path}/cont.npz",
                                               f"init_from={tmp_path}/mm.npz", "policy.schedule.iterations=1",
                                               "reward.max_steps=80"]))
    assert st3["iteration"] == 1 and st3["warm"] and "bc" not in st3     # continued: no warm start


def test_train_policy_bad_level_is_one_line_error(tmp_path, capsys):
    from train_policy import train
    from smbwm.utils.config_errors import ConfigError
    with pytest.raises(ConfigError):
        train(compose("policy", ["levels=[9-9]", f"run_dir={tmp_path}"]))
    assert "bad level" in capsys.readouterr().err


def test_mind_picture(env_1_1):
    from smbwm.policy.picture import gif_frames, panel
    agent = ModularMindAgent(tier="normal", record=True, seed=0)
    obs, info = env_1_1.reset(seed=0)
    agent.reset(seed=0)
    frames, xs = [obs], []
    for _ in range(40):
        xs.append(int(info["x_pos"]))
        obs, _, term, trunc, info = env_1_1.step(agent.act(obs, info))
        frames.append(obs)
        if term or trunc:
            break
    img = panel(frames, agent.trace, agent.spec, xs)
    assert len(agent.trace) == len(xs) and img.width > 500 and img.height > 300
    pixels = np.asarray(img)
    assert (pixels[:, :, 0] > 200).mean() > 0.3 and pixels.std() > 20      # drawn, not blank
    assert len(gif_frames(frames, img, len(agent.trace))) == (len(agent.trace) + 1) // 2
