"""The end model (models.end_model): trained by scripts/train_end_model.py on real episodes, stored in the
checkpoint folder, and ending the dream env's episodes where it says the game is over."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import ROOT

from smbwm import actions as A
from smbwm.data.episode import list_episodes, read_episode, write_episode
from smbwm.envs.world_model_env import WorldModelEnv
from smbwm.models.end_model import EndModel
from smbwm.models.world_model import END_FILE, WorldModel, to_model



def train_end_model(args: list[str], cwd) -> subprocess.CompletedProcess:
    """The script as a user runs it, from another directory (it imports the installed package)."""
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "train_end_model.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def ended_episodes(real_episodes, tmp_path_factory):
    """The real episodes, each also copied with its last step marked as the game's end: an end to learn
    on every file, whatever the short fixture episodes ended with."""
    out = tmp_path_factory.mktemp("ended")
    for p in list_episodes(real_episodes):
        ep = read_episode(p)
        ep.terminated[:] = False
        ep.terminated[-1] = True
        write_episode(out / p.name, ep)
    return out


@pytest.fixture(scope="module")
def end_checkpoint(tiny_checkpoint, ended_episodes, tmp_path_factory):
    out = tmp_path_factory.mktemp("end_ck")
    done = train_end_model(["--data", str(ended_episodes), "--heldout", str(ended_episodes), "--checkpoint",
                            str(tiny_checkpoint), "--out", str(out), "--steps", "6", "--batch", "8", "--jitter", "4"],
                           cwd=out)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def test_training_writes_an_end_model_that_the_checkpoint_loads(end_checkpoint, tiny_checkpoint, ended_episodes):
    meta = json.loads((end_checkpoint / "model.json").read_text())
    assert (end_checkpoint / END_FILE).exists() and 0 < meta["end_model"]["threshold"] < 1
    report = json.loads((end_checkpoint / "end_model_report.json").read_text())
    assert report["heldout_ends"] == len(list_episodes(ended_episodes))
    for k in ("ends_found", "false_ends_per_1000_steps", "false_ends_per_1000_last_10_steps"):
        assert 0 <= report[k] <= 1000
    model, _ = WorldModel.load(end_checkpoint)
    assert isinstance(model.end_model, EndModel) and model.end_model.cfg.threshold == meta["end_model"]["threshold"]
    assert WorldModel.load(tiny_checkpoint)[0].end_model is None          # the source checkpoint is untouched


def test_a_checkpoint_naming_an_end_model_without_its_file_is_one_clear_error(end_checkpoint, tmp_path):
    from smbwm.utils.checkpoint import CheckpointError
    broken = tmp_path / "ck"
    shutil.copytree(end_checkpoint, broken)
    (broken / END_FILE).unlink()
    with pytest.raises(CheckpointError, match=END_FILE):
        WorldModel.load(broken)


def test_training_without_any_ended_episode_says_so(real_episodes, tiny_checkpoint, tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    for p in list_episodes(real_episodes):
        ep = read_episode(p)
        ep.terminated[:] = False
        write_episode(plain / p.name, ep)
    done = train_end_model(["--data", str(plain), "--heldout", str(plain), "--checkpoint", str(tiny_checkpoint),
                            "--out", str(tmp_path / "out"), "--steps", "2"], cwd=tmp_path)
    assert done.returncode != 0 and "error: no training episode ends" in done.stderr
    assert not (tmp_path / "out" / END_FILE).exists()


def _set_threshold(folder, value):
    meta = json.loads((folder / "model.json").read_text())
    meta["end_model"]["threshold"] = value
    (folder / "model.json").write_text(json.dumps(meta))


def test_the_dream_env_ends_an_episode_where_the_end_model_says(end_checkpoint, tiny_spawns, tmp_path):
    ck = tmp_path / "ck"
    shutil.copytree(end_checkpoint, ck)
    for threshold, end_episodes, ends in ((-1.0, True, True), (2.0, True, False), (-1.0, False, False)):
        _set_threshold(ck, threshold)
        env = WorldModelEnv(checkpoint=ck, spawn_dir=tiny_spawns, max_episode_steps=3, end_episodes=end_episodes)
        env.reset(seed=0, options={"spawn": 0})
        _, _, term, trunc, info = env.step(A.to_byte(["right"]))
        assert term == ends and not trunc and 0 <= info["end_prob"] <= 1
        assert "end_model" in info["timings_ms"]


def test_the_shipped_end_model_ends_the_real_game_where_the_game_ends_it():
    """On the real emulator, 1-1 with → held and no jump: Mario runs into the first goomba and the game
    ends the episode. The shipped end model, given the game's own frames, says so at that step and at no
    step before it."""
    from smbwm.envs.smb_env import SuperMarioBrosGym
    model, _ = WorldModel.load(ROOT / "checkpoints")
    assert model.end_model is not None
    env = SuperMarioBrosGym("1-1")
    frames = [env.reset(seed=0)[0]]
    term = False
    for _ in range(300):
        obs, _, term, trunc, info = env.step(A.to_byte(["right"]))
        frames.append(obs)
        if term or trunc:
            break
    env.close()
    assert term and not info.get("flag_get")
    f = to_model(np.stack(frames))
    with torch.no_grad():
        p = model.end_model.end_prob(f[:-1], f[1:]).numpy()
    thr = model.end_model.cfg.threshold
    assert p[-1] > thr and (p[:-1] <= thr).all()


def test_the_dream_env_ends_an_episode_once_it_has_lost_mario(tiny_checkpoint, tiny_spawns):
    """The tiny model soon draws frames without a sharp Mario; once it has gone `lost_end_steps` frames in a
    row without him the episode ends (end_reason "mario_lost"), and only then; 0 or --no-end never end it."""
    from smbwm.models.mario_sprite import count_marios
    for lost_end, end_episodes in ((3, True), (0, True), (3, False)):
        env = WorldModelEnv(checkpoint=tiny_checkpoint, spawn_dir=tiny_spawns, max_episode_steps=40,
                            lost_end_steps=lost_end, end_episodes=end_episodes)
        obs, _ = env.reset(seed=0, options={"spawn": 0})
        assert count_marios(obs[None])[0] == 1                 # the spawn's own frame shows him
        lost, term, trunc, steps = 0, False, False, 0
        while not (term or trunc):
            obs, _, term, trunc, info = env.step(A.to_byte(["right"]))
            steps += 1
            lost = 0 if count_marios(obs[None])[0] else lost + 1
            assert info["mario_lost_steps"] == lost
            expect = lost_end > 0 and end_episodes and lost >= lost_end
            assert term == expect and info["end_reason"] == ("mario_lost" if expect else "")
        assert (term and steps < 40) if lost_end > 0 and end_episodes else (trunc and steps == 40)
    with pytest.raises(ValueError, match="lost_end_steps"):
        WorldModelEnv(checkpoint=tiny_checkpoint, spawn_dir=tiny_spawns, lost_end_steps=-1)
