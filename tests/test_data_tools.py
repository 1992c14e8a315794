"""Data tools on real emulator episodes: replay fidelity, the split, the low-res cache, the
DIAMOND_SuperMario importer, and spawn points (from episodes and from DIAMOND spawn folders)."""
from __future__ import annotations

import json
import shutil

import gymnasium
import h5py
import numpy as np
import pytest

from smbwm import actions as A
import dataset
import smbwm.envs  # noqa: F401 - registers the smbwm/ ids
from smbwm.data.episode import list_episodes, read_episode
from smbwm.data.lowres import cache_path, downsample, load_lowres
from smbwm.data.spawn import list_spawns, load_spawn
from smbwm.data.spawn_tools import replay_to_spawn
from smbwm.data.split import SplitConfig, SplitError, episodes_for, load_split, make_split, write_split

_DIAMOND_BITS = (A.BUTTON_BITS["A"], A.BUTTON_BITS["left"], A.BUTTON_BITS["right"])  # their [jump, left, right]


def _copy(src, dst, n: int | None = None):
    dst.mkdir(parents=True)
    for p in list_episodes(src)[:n]:
        shutil.copy(p, dst / p.name)
    return dst


def _error_lines(err: str) -> list[str]:
    """stderr without tqdm's progress lines."""
    return [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("error")]


def test_replaying_stored_actions_reproduces_every_frame(real_episodes):
    for p in list_episodes(real_episodes):
        ep = read_episode(p)
        env = gymnasium.make(f"smbwm/SuperMarioBros-{ep.attrs['level']}-v0")
        obs, _ = env.reset(seed=int(ep.attrs["seed"]))
        assert np.array_equal(obs, ep.frames[0]), p.name
        for t, a in enumerate(ep.actions):
            obs, *_ = env.step(int(a))
            assert np.array_equal(obs, ep.frames[t + 1]), f"{p.name}: frame {t + 1} differs on replay"
        env.close()


def test_split_is_deterministic_and_written(tmp_path, real_episodes, capsys):
    data = _copy(real_episodes, tmp_path / "eps")
    a = make_split(data, SplitConfig(seed=0, test_fraction=0.4))
    assert a == make_split(data, SplitConfig(seed=0, test_fraction=0.4))
    assert 1 <= len(a["test"]) <= 5 and len(a["train"]) + len(a["test"]) == 6
    assert not set(a["train"]) & set(a["test"])
    assert len({json.dumps(make_split(data, SplitConfig(seed=s, test_fraction=0.4))["test"]) for s in range(6)}) > 1
    assert dataset.main(["split", str(data), "--test-fraction", "0.4"]) == 0
    train, test = load_split(data)
    assert sorted(p.name for p in test) == a["test"] and sorted(p.name for p in train) == a["train"]
    # episodes added later never move old ones between train and test
    extra = data / "sub"
    extra.mkdir()
    for i in range(6):
        shutil.copy(data / a["train"][0], extra / f"late{i}.hdf5")
    b = make_split(data, SplitConfig(seed=0, test_fraction=0.4))
    assert set(a["test"]) <= set(b["test"]) and set(a["train"]) <= set(b["train"])
    # whole levels held out
    held = make_split(data, SplitConfig(seed=0, test_fraction=0.0, test_levels=["1-2"]))
    assert held["test"] and all("1-2" in r for r in held["test"]) and all("1-2" not in r for r in held["train"])
    capsys.readouterr()
    assert dataset.main(["split", str(data), "--test-fraction", "1.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "test_fraction" in err and "\n" not in err


def test_one_rule_picks_the_episodes_split_side_else_all(tmp_path, real_episodes):
    data = _copy(real_episodes, tmp_path / "eps")
    every = list_episodes(data)
    assert episodes_for(data, "train") == every == episodes_for(data, "test")   # no split.json: everything
    split = make_split(data, SplitConfig(seed=0, test_fraction=0.4))
    write_split(data, split)
    train, test = episodes_for(data, "train"), episodes_for(data, "test")
    assert sorted(p.name for p in train) == split["train"] and sorted(p.name for p in test) == split["test"]
    other = write_split(data, {**split, "train": split["test"], "test": split["train"]}, tmp_path / "swapped.json")
    assert episodes_for(data, "train", other) == test        # an explicit split file wins
    with pytest.raises(SplitError):
        episodes_for(data, "train", tmp_path / "missing.json")
    with pytest.raises(ValueError):
        episodes_for(data, "all")


def test_build_cache_is_the_exact_4x4_average_and_reports_corrupt_files(tmp_path, real_episodes, capsys):
    data = _copy(real_episodes, tmp_path / "eps", n=2)
    assert dataset.main(["cache", str(data)]) == 0
    stamps = {}
    for p in list_episodes(data):
        low = load_lowres(p, data, build=False)
        full = read_episode(p).frames
        assert low.shape == (len(full), 60, 64, 3) and low.dtype == np.uint8
        np.testing.assert_array_equal(low, downsample(full))
        stamps[p] = cache_path(p, data).stat().st_mtime_ns
    exact = full[:1].reshape(1, 60, 4, 64, 4, 3).astype(np.float64).mean((2, 4))
    assert np.abs(low[:1].astype(np.float64) - exact).max() <= 0.5
    assert dataset.main(["cache", str(data)]) == 0                     # fresh entries are not rebuilt
    assert all(cache_path(p, data).stat().st_mtime_ns == t for p, t in stamps.items())
    (data / "broken.hdf5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    capsys.readouterr()
    assert dataset.main(["cache", str(data)]) == 1                     # the others still get built
    err = _error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "broken.hdf5" in err[0]


def _write_diamond_file(path, episodes, encoding: str, bgr: bool = False):
    """Write episodes back to back the way DIAMOND_SuperMario's recorder does: frame_i_x is the frame
    seen at step i, frame_i_y the action taken, helperarr[i] = [reward of step i-1, life lost]; after an
    episode ends (their -50 end bonus) the next frame is a fresh reset and the last result is not stored."""
    frames, acts, helper = [], [], []
    reward = 0.0
    for k, ep in enumerate(episodes):
        for t in range(len(ep)):
            frames.append(ep.frames[t][..., ::-1] if bgr else ep.frames[t])
            a = int(ep.actions[t])
            if encoding == "3":
                acts.append(np.array([(a & bit) != 0 for bit in _DIAMOND_BITS], np.int64))
            else:
                acts.append(np.eye(7, dtype=np.int64)[A.SIMPLE_MOVEMENT.index(a)])
            helper.append([reward, 0])
            reward = float(ep.rewards[t]) - (50.0 if t == len(ep) - 1 else 0.0)
    with h5py.File(path, "w") as f:
        for i, (x, y, h) in enumerate(zip(frames, acts, helper)):
            f.create_dataset(f"frame_{i}_x", data=x)
            f.create_dataset(f"frame_{i}_y", data=y)
            f.create_dataset(f"frame_{i}_helperarr", data=np.array(h))


@pytest.mark.parametrize("encoding, bgr", [("3", False), ("7", True)])
def test_import_diamond_layout(tmp_path, real_episodes, encoding, bgr, capsys):
    eps = [read_episode(p) for p in list_episodes(real_episodes) if "1-1" in p.name][:2]
    src = tmp_path / "diamond"
    src.mkdir()
    _write_diamond_file(src / "mario_episode_data_0.hdf5", eps, encoding, bgr=bgr)
    out = tmp_path / "imported"
    assert dataset.main(["import", "--from", "diamond_supermario", str(src), str(out)]) == 0
    files = list_episodes(out)
    assert len(files) == 2                                          # cut at the reset between them
    for ours, p in zip(eps, files):
        got = read_episode(p)
        T = len(ours) - 1                                           # the step across the cut is dropped
        assert len(got) == T and got.attrs["source"] == "diamond_supermario/import" and got.attrs["level"] == "1-1"
        np.testing.assert_array_equal(got.frames, ours.frames[:T + 1])       # RGB, whatever the file held
        want = ours.actions[:T] if encoding == "7" else ours.actions[:T] & np.uint8(0xFF ^ A.BUTTON_BITS["B"])
        np.testing.assert_array_equal(got.actions, want)
        np.testing.assert_allclose(got.rewards, ours.rewards[:T])
        assert got.truncated[-1] and not got.terminated.any()
    assert "BGR" in capsys.readouterr().out if bgr else True
    assert dataset.main(["import", "--from", "diamond_supermario", str(src), str(out)]) == 0   # re-run skips
    assert len(list_episodes(out)) == 2


def test_import_rejects_other_files_with_one_line(tmp_path, real_episodes, capsys):
    for src in (list_episodes(real_episodes)[0], tmp_path / "missing"):
        assert dataset.main(["import", "--from", "diamond_supermario", str(src), str(tmp_path / "o")]) == 2
        err = _error_lines(capsys.readouterr().err)
        assert len(err) == 1 and str(src) in err[0]


def test_spawns_from_real_episodes_replay_to_their_frames(tmp_path, real_episodes):
    out = tmp_path / "spawn"
    assert dataset.main(["spawn", str(real_episodes), str(out), "--count", "4", "--seed", "1"]) == 0
    folders = list_spawns(out)
    assert len(folders) == 4 and {f.name.split("_")[0] for f in folders} == {"1-1", "1-2"}
    for f in folders:
        s = load_spawn(f)
        ep = read_episode(real_episodes / s.meta["episode"])
        t = s.meta["start"]
        np.testing.assert_array_equal(s.full_res, ep.frames[t:t + 4])
        np.testing.assert_array_equal(s.low_res, downsample(s.full_res))
        np.testing.assert_array_equal(s.actions, ep.actions[t:t + 4])       # act[3]: the action taken next
        np.testing.assert_array_equal(s.next_actions, ep.actions[t + 4:t + 4 + 200])
        assert s.replay_actions == [int(a) for a in ep.actions[:t + 3]] and (f / "preview.png").exists()
        env = gymnasium.make(f"smbwm/SuperMarioBros-{s.meta['level']}-v0")
        obs = replay_to_spawn(env, s)
        env.close()
        assert np.array_equal(obs, s.full_res[-1]), f"{f.name}: replay did not reach the spawn's last frame"
    again = tmp_path / "again"
    dataset.main(["spawn", str(real_episodes), str(again), "--count", "4", "--seed", "1"])
    assert [f.name for f in list_spawns(again)] == [f.name for f in folders]   # deterministic picks


def test_spawn_from_diamond_layout_folder(tmp_path, real_episodes):
    ep = read_episode(list_episodes(real_episodes)[0])
    rgb = ep.frames[30:34]
    src = tmp_path / "csgo" / "spawn" / "0"
    src.mkdir(parents=True)
    np.save(src / "full_res.npy", np.ascontiguousarray(rgb[..., ::-1].transpose(0, 3, 1, 2)))   # BGR, CHW
    np.save(src / "low_res.npy", np.zeros((4, 3, 60, 64), np.uint8))
    acts3 = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 0, 0]], np.float32)           # jump, left, right
    np.save(src / "act.npy", acts3)
    np.save(src / "next_act.npy", np.array([[0, 0, 1]] * 5, np.float32))
    out = tmp_path / "converted"
    assert dataset.main(["spawn", "--from", "diamond_supermario", str(src.parent), str(out)]) == 0
    (folder,) = list_spawns(out)
    s = load_spawn(folder)
    np.testing.assert_array_equal(s.full_res, rgb)
    np.testing.assert_array_equal(s.low_res, downsample(rgb))
    assert [A.name(a) for a in s.actions] == ["right+A", "right", "left", "NOOP"]
    assert [A.name(a) for a in s.next_actions] == ["right"] * 5 and s.replay_actions is None


def test_spawn_tool_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in ([str(empty), str(tmp_path / "o")], ["--from", "diamond_supermario", str(empty), str(tmp_path / "o")],
                 [str(tmp_path / "nope"), str(tmp_path / "o")]):
        assert dataset.main(["spawn", *args]) == 2
        err = _error_lines(capsys.readouterr().err)
        assert len(err) == 1, err


def test_one_command_runs_every_data_tool_and_refuses_unknown_ones(tmp_path, capsys):
    import subprocess
    import sys
    from conftest import ROOT
    assert dataset.main([]) == 2 and "tools:" in capsys.readouterr().out
    assert dataset.main(["shuffle", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown tool 'shuffle'; choose one of split, cache, import, spawn"
    for tool in dataset.TOOLS:              # each tool's own flags, from the real command line
        out = subprocess.run([sys.executable, "src/dataset.py", tool, "--help"], cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.startswith(f"usage: python src/dataset.py {tool}"), out.stderr
    assert dataset.main(["split", str(tmp_path / "none")]) == 2       # the tool's own one-line error
    assert capsys.readouterr().err.startswith("error: ")
