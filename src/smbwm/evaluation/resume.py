"""Finished sections of an evaluate run, kept beside its report until the report is written.

A full evaluation runs for hours on a CPU without bf16 units; a run that dies (the machine's session
ends, a crash, Ctrl-C) and is started again with the same command continues from its first unfinished
section. Each section (a set's fidelity figures, a set's playability windows, the spawn minutes) is
seeded on its own, so a resumed report is the report an uninterrupted run writes. The folder is reused
only if the run is the same: the same settings, checkpoint files and episode files (sizes and times);
otherwise it starts over.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from smbwm.utils.paths import file_stamp


def run_key(config: dict, checkpoint: Path, sets: dict[str, list[Path]]) -> dict:
    """What makes two runs the same run: their settings, checkpoint files and episode files."""
    files = sorted(p for p in Path(checkpoint).iterdir() if p.is_file() and p.suffix in (".json", ".safetensors"))
    return {"config": config,
            "checkpoint": {p.name: file_stamp(p) for p in files if not p.name.startswith("report")},
            "episodes": {name: [[str(p), file_stamp(p)] for p in paths] for name, paths in sets.items()}}


def _pack(obj, arrays: dict):
    """JSON for nested dicts of numbers, strings and arrays (arrays set aside by name; dict keys keep their type)."""
    if isinstance(obj, np.ndarray):
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"array": name}
    if isinstance(obj, dict):
        return {"dict": [[k, _pack(v, arrays)] for k, v in obj.items()]}
    return {"value": obj}


def _unpack(obj, arrays):
    if "array" in obj:
        return arrays[obj["array"]]
    if "dict" in obj:
        return {k: _unpack(v, arrays) for k, v in obj["dict"]}
    return obj["value"]


class FinishedSections:
    """A folder of finished sections: `<name>.json` (figures, seconds, and how to rebuild the pictures)
    and `<name>.npz` (the pictures' frames). `key` (run_key) decides whether a folder left by an earlier
    run is this run's; `resume=False` always starts over."""

    def __init__(self, folder: Path, key: dict, resume: bool = True):
        self.folder = Path(folder)
        key = json.loads(json.dumps(key, default=str))            # as it reads back from disk
        key_file = self.folder / "run.json"
        same = False
        if resume and key_file.exists():
            try:
                same = json.loads(key_file.read_text()) == key
            except (OSError, ValueError):
                same = False
        if self.folder.exists() and not same:
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file.write_text(json.dumps(key))
        self.done = sorted(p.stem.replace("~", "/") for p in self.folder.glob("*.json") if p.name != "run.json")

    def _path(self, name: str, suffix: str) -> Path:
        return self.folder / (name.replace("/", "~") + suffix)

    def get(self, name: str):
        """(figures, pictures or None, seconds) of a finished section, or None."""
        path = self._path(name, ".json")
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        pics = None
        if saved["pictures"] is not None:
            with np.load(self._path(name, ".npz"), allow_pickle=False) as z:
                pics = _unpack(saved["pictures"], {k: z[k] for k in z.files})
        return saved["figures"], pics, saved["seconds"]

    def put(self, name: str, figures: dict, pictures: dict | None, seconds: float) -> None:
        """Keep a finished section; the JSON is written last, so a section half written is not finished."""
        arrays: dict = {}
        packed = _pack(pictures, arrays) if pictures else None
        if arrays:
            np.savez(self._path(name, ".npz"), **arrays)
        tmp = self._path(name, ".json.tmp")
        tmp.write_text(json.dumps({"figures": figures, "pictures": packed, "seconds": seconds}))
        tmp.replace(self._path(name, ".json"))

    def remove(self) -> None:
        """The report is written: the folder is no longer needed."""
        shutil.rmtree(self.folder, ignore_errors=True)
