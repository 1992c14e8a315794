"""The one reader/writer of the episode format (specified in docs/data.md, "The episode format").

One episode per HDF5 file. `frames[t]` is seen, `actions[t]` is taken, `frames[t+1]` results, so
`len(frames) == len(actions) + 1`. Writers build the (compressed) file in memory and only on close
write it to `<name>.hdf5.tmp`, read it back and rename it, so a killed process never leaves a half
file that looks whole, and a full disk is an ordinary OSError: HDF5 itself never sees a failed write
(after one it can neither close nor free the file, and the process crashes at exit).
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import h5py
import numpy as np

FORMAT = "smb-world-model/episode"
VERSION = 1
FRAME_SHAPE = (240, 256, 3)
INFO_KEYS = ("x_pos", "y_pos", "life", "coins", "time", "status", "world", "stage", "flag_get", "score", "camera_x")
STATUS_CODES = {"small": 0, "tall": 1, "fireball": 2}
COMPRESSIONS = ("lzf", "gzip")
_STEP_FIELDS = {"actions": np.uint8, "rewards": np.float32, "terminated": np.bool_, "truncated": np.bool_}


class EpisodeError(ValueError):
    """A file that is not a valid episode. str() is one line naming the file."""


class EpisodeWriteError(OSError):
    """An episode could not be written (disk full, read-only, quota); nothing was committed. One line."""


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__


@dataclass
class Episode:
    frames: np.ndarray                      # (T+1, 240, 256, 3) uint8 RGB
    actions: np.ndarray                     # (T,) uint8 NES bytes
    rewards: np.ndarray                     # (T,) float32
    terminated: np.ndarray                  # (T,) bool
    truncated: np.ndarray                   # (T,) bool
    info: dict[str, np.ndarray] = field(default_factory=dict)  # key -> (T+1,) int32
    attrs: dict[str, Any] = field(default_factory=dict)
    level_text: str | None = None
    step_text: list[str] | None = None      # optional per-step text (e.g. a VLM's raw replies)

    def __len__(self) -> int:
        return len(self.actions)


def info_to_ints(info: Mapping[str, Any]) -> dict[str, int]:
    """Project an env info dict onto the stored integer keys (status names become codes)."""
    out = {}
    for k in INFO_KEYS:
        v = info.get(k, 0)
        if k == "status" and isinstance(v, str):
            v = STATUS_CODES.get(v, 0)
        out[k] = int(v)
    return out


def _clean_attr(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, (bool, int, float, str, np.integer, np.floating, np.bool_)):
        return v
    return str(v)


class EpisodeWriter:
    """Streams one episode to disk. Usage:

        w = EpisodeWriter(path, attrs); w.reset(frame0, info0)
        w.step(action, reward, terminated, truncated, frame, info) ...; w.close()

    `close()` commits (atomic rename); `abort()` removes the temporary file.
    """

    def __init__(self, path: str | os.PathLike, attrs: Mapping[str, Any], compression: str = "lzf",
                 buffer_frames: int = 64):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(self.path.name + ".tmp")
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
        self.closed = True                        # until the file exists: abort() has nothing to remove
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # in memory (compressed chunks: a few MB a thousand steps); written out by close()
            self._file = h5py.File(self.tmp_path, "w", driver="core", backing_store=False)
            self.closed = False
            meta = {"format": FORMAT, "version": VERSION, "frame_skip": 4,
                    "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            meta.update(attrs)
            for k, v in meta.items():
                self._file.attrs[k] = _clean_attr(v)
            comp = {"compression": "lzf"} if compression == "lzf" else {"compression": "gzip", "compression_opts": 1}
            self._frames = self._file.create_dataset("frames", shape=(0, *FRAME_SHAPE), maxshape=(None, *FRAME_SHAPE),
                                                     dtype=np.uint8, chunks=(1, *FRAME_SHAPE), fletcher32=True,
                                                     **comp)   # checksums: bit rot is an error, not a frame
        except (OSError, RuntimeError) as e:
            raise self._failed(e) from None
        self._buffer_frames = buffer_frames
        self._pending: list[np.ndarray] = []
        self._n_frames = 0
        self._steps: dict[str, list] = {k: [] for k in _STEP_FIELDS}
        self._info: dict[str, list[int]] = {k: [] for k in INFO_KEYS}
        self._text: list[str] | None = None
        self.level_text: str | None = None

    def __len__(self) -> int:
        return len(self._steps["actions"])

    def reset(self, frame: np.ndarray, info: Mapping[str, Any]) -> None:
        if self._n_frames or self._pending:
            raise RuntimeError("EpisodeWriter.reset called twice")
        self._add_frame(frame, info)

    def step(self, action: int, reward: float, terminated: bool, truncated: bool, frame: np.ndarray,
             info: Mapping[str, Any], text: str | None = None) -> None:
        self._steps["actions"].append(int(action))
        self._steps["rewards"].append(float(reward))
        self._steps["terminated"].append(bool(terminated))
        self._steps["truncated"].append(bool(truncated))
        if text is not None and self._text is None:
            self._text = [""] * (len(self) - 1)
        if self._text is not None:
            self._text.append(text or "")
        self._add_frame(frame, info)

    def set_attr(self, key: str, value: Any) -> None:
        try:
            self._file.attrs[key] = _clean_attr(value)
        except (OSError, RuntimeError) as e:
            raise self._failed(e) from None

    def _failed(self, e: BaseException) -> EpisodeWriteError:
        """Drop the temporary file; the error to raise (one line)."""
        self.abort()
        return EpisodeWriteError(f"{self.path}: cannot write ({_one_line(e)}); this episode is dropped")

    def _add_frame(self, frame: np.ndarray, info: Mapping[str, Any]) -> None:
        frame = np.asarray(frame)
        if frame.shape != FRAME_SHAPE or frame.dtype != np.uint8:
            raise EpisodeError(f"{self.path}: frame must be {FRAME_SHAPE} uint8, got {frame.shape} {frame.dtype}")
        self._pending.append(np.array(frame, copy=True))  # the emulator reuses its buffer: copy
        for k, v in info_to_ints(info).items():
            self._info[k].append(v)
        if len(self._pending) >= self._buffer_frames:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []   # taken first: an interrupted flush never writes twice
        n = len(batch)
        try:
            self._frames.resize(self._n_frames + n, axis=0)
            self._frames[self._n_frames:self._n_frames + n] = np.stack(batch)
        except (OSError, RuntimeError, ValueError) as e:      # disk full, quota, I/O error
            raise self._failed(e) from None
        self._n_frames += n

    def close(self, mark_truncated: bool = False) -> Path | None:
        """Commit the episode. `mark_truncated` flags the last step as truncated (stopped early).
        An episode without a single step is discarded (returns None). A file that does not read back
        is never committed (EpisodeWriteError, the temporary file removed)."""
        if self.closed:
            return self.path
        try:
            return self._commit(mark_truncated)
        except EpisodeWriteError:
            raise
        except (OSError, RuntimeError, ValueError, EpisodeError) as e:
            raise self._failed(e) from None

    def _commit(self, mark_truncated: bool) -> Path | None:
        self._flush()
        # Ctrl-C can land between the appends of step(): keep the longest consistent prefix
        T = min(*(len(v) for v in self._steps.values()), *(len(v) - 1 for v in self._info.values()),
                self._n_frames - 1, len(self._text) if self._text is not None else self._n_frames)
        if T < 1:
            self.abort()
            return None
        for v in (*self._steps.values(), *([self._text] if self._text is not None else [])):
            del v[T:]
        for v in self._info.values():
            del v[T + 1:]
        if self._n_frames > T + 1:
            self._frames.resize(T + 1, axis=0)
        if mark_truncated and not (self._steps["terminated"][-1] or self._steps["truncated"][-1]):
            self._steps["truncated"][-1] = True
        f = self._file
        for k, dt in _STEP_FIELDS.items():
            f.create_dataset(k, data=np.asarray(self._steps[k], dtype=dt), fletcher32=True)
        g = f.create_group("info")
        for k, v in self._info.items():
            g.create_dataset(k, data=np.asarray(v, dtype=np.int32), fletcher32=True)
        if self.level_text is not None:
            f.create_dataset("level_text", data=self.level_text, dtype=h5py.string_dtype())
        if self._text is not None:
            f.create_dataset("step_text", data=np.array(self._text, dtype=object), dtype=h5py.string_dtype())
        f.attrs["length"] = len(self)
        f.flush()
        image = f.id.get_file_image()
        f.close()
        with open(self.tmp_path, "wb") as out:       # a full disk fails here, as a plain OSError
            out.write(image)
            out.flush()
            os.fsync(out.fileno())
        if episode_length(self.tmp_path) != len(self):      # what is committed reads back
            raise EpisodeError(f"{self.tmp_path}: wrote {len(self)} steps but the file does not say so")
        os.replace(self.tmp_path, self.path)
        self.closed = True
        return self.path

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._file.close()
        except (OSError, RuntimeError, ValueError):
            pass                 # a full disk cannot flush the file's last buffers: it is deleted anyway
        finally:
            self.tmp_path.unlink(missing_ok=True)


def write_episode(path: str | os.PathLike, ep: Episode, compression: str = "lzf") -> Path:
    """Write a whole in-memory episode (atomic)."""
    w = EpisodeWriter(path, ep.attrs, compression=compression)
    info = ep.info or {}
    def info_at(t: int) -> dict:
        return {k: int(v[t]) for k, v in info.items()}
    w.reset(ep.frames[0], info_at(0))
    for t in range(len(ep.actions)):
        w.step(ep.actions[t], ep.rewards[t], ep.terminated[t], ep.truncated[t], ep.frames[t + 1], info_at(t + 1),
               text=ep.step_text[t] if ep.step_text else None)
    w.level_text = ep.level_text
    out = w.close()
    assert out is not None
    return out


def _check(path: Path, f: h5py.File, frames_too: bool) -> int:
    if f.attrs.get("format") != FORMAT:
        raise EpisodeError(f"{path}: not an episode file (format attribute is {f.attrs.get('format')!r}, expected {FORMAT!r})")
    if int(f.attrs.get("version", -1)) != VERSION:
        raise EpisodeError(f"{path}: unsupported episode version {f.attrs.get('version')!r} (this code reads {VERSION})")
    for k in ("frames", "actions", "rewards", "terminated", "truncated"):
        if not isinstance(f.get(k), h5py.Dataset):
            raise EpisodeError(f"{path}: missing dataset {k!r}")
    T = f["actions"].shape[0] if f["actions"].ndim == 1 else -1
    if T < 1:
        raise EpisodeError(f"{path}: actions must be a non-empty 1-D array, got shape {f['actions'].shape}")
    fr = f["frames"]
    if fr.shape != (T + 1, *FRAME_SHAPE) or fr.dtype != np.uint8:
        raise EpisodeError(f"{path}: frames must be ({T + 1}, 240, 256, 3) uint8, got {fr.shape} {fr.dtype}")
    for k, dt in _STEP_FIELDS.items():
        d = f[k]
        if d.shape != (T,) or d.dtype != dt:
            raise EpisodeError(f"{path}: {k} must be ({T},) {np.dtype(dt)}, got {d.shape} {d.dtype}")
    info = f.get("info", {})
    if not isinstance(info, (h5py.Group, dict)):
        raise EpisodeError(f"{path}: info must be a group of per-frame datasets, got a {type(info).__name__}")
    for k, d in info.items():
        if not isinstance(d, h5py.Dataset) or d.shape != (T + 1,) or d.dtype.kind not in "iub":
            raise EpisodeError(f"{path}: info/{k} must be ({T + 1},) integers, got "
                               f"{getattr(d, 'shape', type(d).__name__)} {getattr(d, 'dtype', '')}")
    for k in ("frames", *_STEP_FIELDS):
        if not _allocated(f[k]):                     # a header that declares more than the file holds
            raise EpisodeError(f"{path}: {k} declares {f[k].shape[0]} entries that the file does not hold "
                               "(truncated or forged header)")
    return T


def _allocated(d: h5py.Dataset) -> bool:
    """Whether the file holds storage for every element (never-written elements read as zeros)."""
    if d.chunks:
        want = int(np.prod([-(-n // c) for n, c in zip(d.shape, d.chunks)]))
        return d.id.get_num_chunks() >= want
    return d.id.get_storage_size() >= d.size * d.dtype.itemsize


def read_episode(path: str | os.PathLike, frames: bool = True) -> Episode:
    """Read and validate one episode. Any problem raises EpisodeError with one line naming the file.
    `frames=False` skips loading the (large) frame array (frames is then an empty array)."""
    path = Path(path)
    if not path.exists():
        raise EpisodeError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            _check(path, f, frames)
            ep = Episode(
                frames=f["frames"][:] if frames else np.zeros((0, *FRAME_SHAPE), np.uint8),
                actions=f["actions"][:], rewards=f["rewards"][:],
                terminated=f["terminated"][:], truncated=f["truncated"][:],
                info={k: d[:] for k, d in f.get("info", {}).items()},
                attrs={k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()},
            )
            if "level_text" in f:
                ep.level_text = f["level_text"][()].decode() if isinstance(f["level_text"][()], bytes) else str(f["level_text"][()])
            if "step_text" in f:
                ep.step_text = [s.decode() if isinstance(s, bytes) else str(s) for s in f["step_text"][:]]
            return ep
    except EpisodeError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise EpisodeError(f"{path}: unreadable or corrupt episode file ({msg})") from None


def read_frames(path: str | os.PathLike, index) -> np.ndarray:
    """frames[index] of one episode (a slice or an increasing list of ints) without reading the rest."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            _check(path, f, frames_too=True)
            return f["frames"][index]
    except EpisodeError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
        raise EpisodeError(f"{path}: unreadable or corrupt episode file ({_one_line(e)})") from None


def episode_length(path: str | os.PathLike) -> int:
    """Number of steps, validating the header only (cheap)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            return _check(path, f, frames_too=False)
    except EpisodeError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, AttributeError) as e:
        raise EpisodeError(f"{path}: unreadable or corrupt episode file ({_one_line(e)})") from None


def bad_files_message(errors: list[str]) -> str:
    """One line for several bad episode files: how many, then each with its reason."""
    return errors[0] if len(errors) == 1 else f"{len(errors)} bad episode files: " + "; ".join(errors)


def check_episodes(paths: list[Path]) -> None:
    """Validate every file's header; one EpisodeError naming all the bad ones (not one per run)."""
    bad = []
    for p in paths:
        try:
            episode_length(p)
        except EpisodeError as e:
            bad.append(str(e))
    if bad:
        raise EpisodeError(bad_files_message(bad))


def list_episodes(directory: str | os.PathLike) -> list[Path]:
    """All committed episode files under a directory (recursively), sorted; .tmp files are ignored."""
    d = Path(directory)
    if not d.is_dir():
        raise EpisodeError(f"{d}: not a directory of episodes")
    return sorted(p for p in d.rglob("*.hdf5") if p.is_file())
