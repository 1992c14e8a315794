"""Helpers of the fault suite: processes seen through /proc, one-line error checks, and a generator of
bad episode files made from a real one."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import h5py
import numpy as np


def one_error_line(returncode: int, stderr: str, *words: str, code: int = 2) -> str:
    """The run ended with status `code` and exactly one `error:` line containing `words`, no traceback."""
    assert returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    err = [x for x in stderr.splitlines() if x.startswith("error:")]
    assert len(err) == 1, stderr[-3000:]
    for w in words:
        assert w in err[0], err[0][:3000]
    return err[0]


def children(pid: int) -> list[int]:
    """Processes whose parent is pid (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper counts as gone)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_gone(pids: list[int], seconds: float = 20) -> list[int]:
    """The pids still running after up to `seconds` (polling; returns as soon as all are gone)."""
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def kill_tree(proc: subprocess.Popen) -> None:
    """Cleanup after a test: the process and whatever it left (by pid, never by name)."""
    for p in [proc.pid, *children(proc.pid)]:
        try:
            os.kill(p, 9)
        except OSError:
            pass
    proc.wait(timeout=30)


# --- bad episode files ------------------------------------------------------------------------------
def _rewrite(src: Path, dst: Path, edit: Callable[[h5py.File], None]) -> None:
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)


def _replace(f: h5py.File, name: str, data=None, **kw) -> None:
    del f[name]
    f.create_dataset(name, data=data, **kw)


def _lying_header(src: Path, dst: Path) -> None:
    """A million frames and steps declared, none stored: a file of a few KB."""
    n = 1_000_000
    with h5py.File(src, "r") as s, h5py.File(dst, "w") as f:
        f.attrs.update(dict(s.attrs))
        _declare(f, n)


def _declare(f: h5py.File, n: int) -> None:
    f.create_dataset("frames", shape=(n + 1, 240, 256, 3), dtype=np.uint8, chunks=(1, 240, 256, 3))
    for k, dt in (("actions", np.uint8), ("rewards", np.float32), ("terminated", np.bool_), ("truncated", np.bool_)):
        f.create_dataset(k, shape=(n,), dtype=dt, chunks=(4096,))


def _bit_rot(src: Path, dst: Path) -> None:
    """Flip bytes in the middle of the file (inside the compressed frame chunks)."""
    raw = bytearray(src.read_bytes())
    rng = np.random.default_rng(0)
    for i in rng.integers(len(raw) // 4, 3 * len(raw) // 4, size=64):
        raw[i] ^= 0xFF
    dst.write_bytes(bytes(raw))


BAD_EPISODES: dict[str, Callable[[Path, Path], None]] = {
    "truncated_file": lambda s, d: d.write_bytes(s.read_bytes()[: s.stat().st_size // 2]),
    "empty_file": lambda s, d: d.write_bytes(b""),
    "not_hdf5": lambda s, d: d.write_bytes(b"this is not an episode\n" * 100),
    "bit_rot": _bit_rot,
    "wrong_format_attr": lambda s, d: _rewrite(s, d, lambda f: f.attrs.__setitem__("format", "something/else")),
    "future_version": lambda s, d: _rewrite(s, d, lambda f: f.attrs.__setitem__("version", 99)),
    "missing_actions": lambda s, d: _rewrite(s, d, lambda f: f.__delitem__("actions")),
    "actions_is_a_group": lambda s, d: _rewrite(s, d, lambda f: (f.__delitem__("actions"), f.create_group("actions"))),
    "extra_dataset": lambda s, d: _rewrite(s, d, lambda f: f.create_dataset("junk", data=np.arange(7))),
    "frames_wrong_shape": lambda s, d: _rewrite(s, d, lambda f: _replace(
        f, "frames", np.zeros((f["actions"].shape[0] + 1, 120, 128, 3), np.uint8))),
    "frames_wrong_dtype": lambda s, d: _rewrite(s, d, lambda f: _replace(
        f, "frames", np.zeros((f["actions"].shape[0] + 1, 240, 256, 3), np.int16), chunks=(1, 240, 256, 3),
        compression="gzip")),
    "rewards_too_short": lambda s, d: _rewrite(s, d, lambda f: _replace(f, "rewards", f["rewards"][:-3])),
    "frames_one_short": lambda s, d: _rewrite(s, d, lambda f: f["frames"].resize(f["frames"].shape[0] - 1, axis=0)
                                              if f["frames"].maxshape[0] is None else None),
    "info_is_a_dataset": lambda s, d: _rewrite(s, d, lambda f: (f.__delitem__("info"),
                                                                 f.create_dataset("info", data=np.arange(5)))),
    "info_wrong_length": lambda s, d: _rewrite(s, d, lambda f: _replace(f, "info/x_pos", np.zeros(3, np.int32))),
    "lying_header": _lying_header,
}
# files that are still valid episodes: readers must read them (an extra dataset is ignored)
STILL_VALID = {"extra_dataset"}


def make_bad_episodes(good: Path, out: Path) -> dict[str, Path]:
    """One file per kind of damage (named <kind>.hdf5) made from a real episode file."""
    out.mkdir(parents=True, exist_ok=True)
    made = {}
    for kind, make in BAD_EPISODES.items():
        dst = out / f"{kind}.hdf5"
        make(good, dst)
        made[kind] = dst
    return made
