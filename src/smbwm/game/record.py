"""Save what a person plays as episodes (data/episode.py format), one file per episode.

Dream play is stored with source "dream/human", the real emulator with "nes/human" (DIAMOND's human
data source, with our keys). An episode ends on death/flag/time limit, on Enter/Tab, or on quit; an
interrupted one is kept with its last step flagged truncated.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from smbwm.data.episode import EpisodeWriter


@dataclass
class Recorder:
    out_dir: Path
    source: str                                   # "dream/human" or "nes/human"
    attrs: dict[str, Any] = field(default_factory=dict)
    saved: list[Path] = field(default_factory=list)
    level_text: str | None = None                 # a MarioGPT level's tiles, stored with each episode
    _writer: EpisodeWriter | None = None
    _count: int = 0

    def start(self, frame: np.ndarray, info: Mapping[str, Any], level: str, extra: Mapping[str, Any] | None = None) -> None:
        """Begin a new episode at `frame` (the one the player sees before the first button)."""
        self.finish(stopped=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        safe_level = str(level).replace("/", "_").replace(":", "-")
        name = f"{self.source.replace('/', '-')}_{safe_level}_{stamp}_{self._count:04d}.hdf5"
        while (self.out_dir / name).exists():   # two resets within one second
            self._count += 1
            name = f"{self.source.replace('/', '-')}_{safe_level}_{stamp}_{self._count:04d}.hdf5"
        self._count += 1
        meta = {**self.attrs, **(extra or {}), "source": self.source, "level": str(level),
                "seed": int(self.attrs.get("seed", 0))}
        self._writer = EpisodeWriter(self.out_dir / name, meta)
        self._writer.level_text = self.level_text
        self._writer.reset(frame, info)

    def step(self, action: int, reward: float, terminated: bool, truncated: bool, frame: np.ndarray,
             info: Mapping[str, Any]) -> None:
        if self._writer is not None:
            self._writer.step(action, reward, terminated, truncated, frame, info)

    def finish(self, stopped: bool = False) -> Path | None:
        """Commit the current episode (an episode without a step is dropped)."""
        w, self._writer = self._writer, None
        if w is None:
            return None
        path = w.close(mark_truncated=stopped)
        if path is not None:
            self.saved.append(path)
        return path
