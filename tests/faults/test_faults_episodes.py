"""Bad episode files through every reader (issue 19, points 6 and 10): each damaged file is either read
(still valid) or named in one `error:` line (never a traceback, never a huge allocation), and a
directory of several bad files names all of them in one run."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from fault_tools import BAD_EPISODES, STILL_VALID, make_bad_episodes, one_error_line

from dataset import main as dataset_main
from smbwm.data.episode import EpisodeError, episode_length, list_episodes, read_episode, read_frames
from smbwm.data.lowres import cache_path, load_lowres, load_scrolls

HEADER_BAD = set(BAD_EPISODES) - STILL_VALID - {"bit_rot"}   # found without reading the frames


@pytest.fixture(scope="module")
def bad_dir(real_episodes, tmp_path_factory) -> Path:
    """Two real episodes plus one file of each kind of damage."""
    d = tmp_path_factory.mktemp("bad_episodes")
    good = list_episodes(real_episodes)[:2]
    for p in good:
        shutil.copy(p, d / p.name)
    make_bad_episodes(good[0], d / "bad")
    return d


def named(line: str, kinds) -> set[str]:
    return {k for k in kinds if f"{k}.hdf5" in line}


@pytest.mark.parametrize("kind", sorted(BAD_EPISODES))
def test_episode_api_reads_or_names_the_file(bad_dir, kind):
    p = bad_dir / "bad" / f"{kind}.hdf5"
    for read in (lambda: read_episode(p), lambda: episode_length(p), lambda: read_frames(p, slice(0, 2)),
                 lambda: read_episode(p, frames=False)):
        try:
            read()
        except EpisodeError as e:
            assert kind in STILL_VALID or str(e).startswith(str(p)) and "\n" not in str(e)
        else:
            assert kind in STILL_VALID or kind == "bit_rot", f"{kind} accepted"
    with pytest.raises(EpisodeError) if kind not in STILL_VALID else _nothing():
        read_episode(p)                                          # the full read catches bit rot too


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_build_cache_names_every_bad_file_once(bad_dir, capsys):
    data = bad_dir
    assert dataset_main(["cache", str(data)]) == 1
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and named(err[0], BAD_EPISODES) == set(BAD_EPISODES) - STILL_VALID
    assert err[0].count("lying_header.hdf5") == 1


def test_a_damaged_cache_entry_is_rebuilt(real_episodes, tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    src = list_episodes(real_episodes)[0]
    ep_path = data / src.name
    shutil.copy(src, ep_path)
    low = load_lowres(ep_path, data).copy()
    scroll = load_scrolls(ep_path, data).copy()
    entry = cache_path(ep_path, data)
    for damage in (lambda: entry.with_suffix(".scroll.npy").write_bytes(b"garbage"),
                   lambda: entry.write_bytes(entry.read_bytes()[:1000]),
                   lambda: np.save(entry.with_suffix(".scroll.npy"), scroll[:-2])):
        damage()
        assert dataset_main(["cache", str(data)]) == 0
        np.testing.assert_array_equal(load_lowres(ep_path, data, build=False), low)
        np.testing.assert_array_equal(load_scrolls(ep_path, data), scroll)


def test_a_read_only_dataset_caches_elsewhere(real_episodes, tmp_path, capsys):
    """The cache's place is taken (as on a read-only disk, even for root): one line naming the option;
    with --cache-dir / data.cache_dir the cache lives outside the dataset."""
    data = tmp_path / "ro"
    data.mkdir()
    shutil.copy(list_episodes(real_episodes)[0], data)
    (data / ".lowres_60x64").write_text("not a directory")
    assert dataset_main(["cache", str(data)]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and "cache_dir" in err[0]
    assert dataset_main(["cache", str(data), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert list((tmp_path / "cache").rglob("*.npy")) and (data / ".lowres_60x64").is_file()


def test_split_refuses_corrupt_files_and_names_all(bad_dir, capsys):
    assert dataset_main(["split", str(bad_dir), "--out", str(bad_dir / "never.json")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and named(err[0], BAD_EPISODES) == HEADER_BAD, err
    assert not (bad_dir / "never.json").exists()


@pytest.mark.parametrize("entry", ["../x.hdf5", "/etc/passwd", 5])
def test_split_naming_files_outside_the_dataset_is_one_line(real_episodes, tmp_path, entry):
    data = tmp_path / "d"
    data.mkdir()
    shutil.copy(list_episodes(real_episodes)[0], data)
    (tmp_path / "x.hdf5").write_bytes(b"")
    (data / "split.json").write_text(json.dumps({"train": [entry], "test": []}))
    r = subprocess.run([sys.executable, "src/dataset.py", "cache", str(data), "--split", "train"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    one_error_line(r.returncode, r.stderr, "split.json", "outside")


def test_spawn_names_every_bad_file(bad_dir, tmp_path, capsys):
    assert dataset_main(["spawn", str(bad_dir), str(tmp_path / "spawns")]) == 2
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
    assert len(err) == 1 and named(err[0], BAD_EPISODES) == HEADER_BAD, err


def test_import_names_a_bad_source_in_one_line(bad_dir, tmp_path, capsys):
    for p in sorted((bad_dir / "bad").glob("*.hdf5")):
        assert dataset_main(["import", "--from", "diamond_supermario", str(p), str(tmp_path / "out")]) == 2, p
        err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("error:")]
        assert len(err) == 1 and p.name in err[0]
    import h5py
    forged = tmp_path / "forged_diamond.hdf5"
    with h5py.File(forged, "w") as f:              # a DIAMOND file whose frame declares 172 GiB
        f.create_dataset("frame_0_x", shape=(1_000_000, 240, 256, 3), dtype=np.uint8, chunks=(1, 240, 256, 3))
        f.create_dataset("frame_0_y", data=np.zeros(8, np.uint8))
    assert dataset_main(["import", "--from", "diamond_supermario", str(forged), str(tmp_path / "out")]) == 2
    assert "frame_0_x" in capsys.readouterr().err


def test_training_names_every_bad_file_in_one_run(bad_dir, tmp_path):
    r = subprocess.run([sys.executable, "src/main.py", "experiment=tiny", "wandb.mode=disabled", f"data.dir={bad_dir}",
                        f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    line = one_error_line(r.returncode, r.stderr)
    assert named(line, BAD_EPISODES) == set(BAD_EPISODES) - STILL_VALID, line
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_evaluate_names_bad_files_in_one_line(bad_dir, tiny_checkpoint, tmp_path):
    r = subprocess.run([sys.executable, "src/evaluate.py", f"checkpoint={tiny_checkpoint}", f"data.dir={bad_dir}",
                        f"out={tmp_path / 'r.json'}", "wandb.mode=disabled"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    line = one_error_line(r.returncode, r.stderr)
    assert named(line, BAD_EPISODES) == HEADER_BAD, line
