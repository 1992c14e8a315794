"""The episode reader/writer on real emulator episodes: round trip, validation, clear errors."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from smbwm.data.episode import Episode, EpisodeError, EpisodeWriter, list_episodes, read_episode, write_episode


def test_real_collection_round_trips(real_episodes):
    files = list_episodes(real_episodes)
    assert len(files) == 6
    for p in files:
        ep = read_episode(p)
        T = len(ep)
        assert ep.frames.shape == (T + 1, 240, 256, 3) and ep.frames.dtype == np.uint8
        assert ep.actions.dtype == np.uint8 and ep.rewards.dtype == np.float32
        assert ep.terminated[-1] or ep.truncated[-1]
        assert not (ep.terminated[:-1] | ep.truncated[:-1]).any()
        assert set(ep.info) >= {"x_pos", "y_pos", "life", "coins", "time", "status", "world", "stage"}
        assert all(v.shape == (T + 1,) and v.dtype == np.int32 for v in ep.info.values())
        assert ep.attrs["format"] == "smb-world-model/episode" and ep.attrs["frame_skip"] == 4
        assert ep.attrs["source"] in ("nes/scripted", "nes/balanced")
        # frames are copies, not views of one reused emulator buffer
        assert len({f.tobytes() for f in ep.frames[::10]}) > 1


def test_write_read_identity(tmp_path, real_episodes):
    ep = read_episode(list_episodes(real_episodes)[0])
    ep.level_text = "-" * 10
    ep.step_text = [f"reply {i}" for i in range(len(ep))]
    out = write_episode(tmp_path / "copy.hdf5", ep, compression="gzip")
    back = read_episode(out)
    np.testing.assert_array_equal(back.frames, ep.frames)
    np.testing.assert_array_equal(back.actions, ep.actions)
    assert back.level_text == ep.level_text and back.step_text == ep.step_text
    assert not (tmp_path / "copy.hdf5.tmp").exists()


def _tiny(T=3):
    return Episode(frames=np.zeros((T + 1, 240, 256, 3), np.uint8), actions=np.zeros(T, np.uint8),
                   rewards=np.zeros(T, np.float32), terminated=np.zeros(T, bool), truncated=np.ones(T, bool),
                   attrs={"source": "test"})


@pytest.mark.parametrize("mutate, needle", [
    (lambda f: f.attrs.__setitem__("format", "something-else"), "not an episode file"),
    (lambda f: f.attrs.__setitem__("version", 99), "unsupported episode version"),
    (lambda f: (f.__delitem__("actions"), f.create_dataset("actions", data=np.zeros(5, np.uint8))), "frames must be"),
    (lambda f: (f.__delitem__("rewards"), f.create_dataset("rewards", data=np.zeros(3, np.float64))), "rewards must be"),
    (lambda f: f.__delitem__("terminated"), "missing dataset 'terminated'"),
])
def test_invalid_files_give_one_clear_line(tmp_path, mutate, needle):
    p = write_episode(tmp_path / "e.hdf5", _tiny())
    with h5py.File(p, "a") as f:
        mutate(f)
    with pytest.raises(EpisodeError) as e:
        read_episode(p)
    msg = str(e.value)
    assert needle in msg and str(p) in msg and "\n" not in msg


def test_truncated_and_garbage_files(tmp_path, real_episodes):
    src = list_episodes(real_episodes)[0]
    data = src.read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.hdf5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    for p in (cut, garbage, tmp_path / "missing.hdf5"):
        with pytest.raises(EpisodeError) as e:
            read_episode(p)
        assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_writer_abort_and_bad_frame(tmp_path):
    w = EpisodeWriter(tmp_path / "a.hdf5", {"source": "test"})
    w.reset(np.zeros((240, 256, 3), np.uint8), {})
    with pytest.raises(EpisodeError):
        w.step(0, 0.0, False, False, np.zeros((60, 64, 3), np.uint8), {})
    w.abort()
    assert list(tmp_path.iterdir()) == []
