"""One game a web page (or an MCP call) drives: the player's `Session` (dream, real, compare) or the
level simulator, stepped by a person's buttons or by an agent, recorded as HDF5 episodes, with the
last minute of frames kept (encoded) for a GIF.

What can be played (`GameSpec.world`):
    dream        the world model from a spawn
    real         the NES emulator, replayed to that spawn
    compare      the emulator beside the dream, same buttons
    level        a generated MarioGPT level in the level simulator
    level_dream  the world model started from that level's first frames
An agent that reads the game state (RAM or the simulator) cannot read a dream: for `dream` it plays
the emulator beside it (compare), and the dream gets the same buttons.
"""
from __future__ import annotations

import io
import tempfile
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from smbwm.game.config import PlayConfig, validate
from smbwm.game.session import Session, Shown
from smbwm.levels.level import Level
from smbwm.serving.catalog import AGENTS, SpawnChoice, make_agent
from smbwm.utils.paths import DEFAULT_SAMPLER

JPEG_QUALITY = 90


@dataclass
class GameSpec:
    world: str = "dream"
    spawn: SpawnChoice | None = None
    sampler: str = DEFAULT_SAMPLER
    level: Level | None = None             # world level / level_dream
    agent: str | None = None               # None: a person's buttons
    seed: int = 0

    @property
    def mode(self) -> str:
        """The Session mode this spec runs in."""
        if self.world in ("dream", "level_dream"):
            reads_state = self.agent is not None and AGENTS[self.agent].reads_state
            return "compare" if reads_state and self.world == "dream" else "dream"
        return "compare" if self.world == "compare" else "real"


@dataclass
class GameConfig:
    fps: float = 15.0                 # game steps per second (the real game's speed at frame-skip 4)
    gif_seconds: float = 60.0         # the downloadable GIF covers this much of the end of play
    gif_scale: float = 1.0            # GIF frames at this fraction of 256x240 (per side)
    max_episode_steps: int | None = 3000
    dream_threads: int | None = None  # torch threads (None: torch's default)


@dataclass
class Played:
    """What one step or reset showed, ready to send: a JPEG per side and what happened."""
    shown: Shown
    jpegs: dict[str, bytes]
    action: int
    agent_text: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def encode_jpeg(frame: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class LiveGame:
    """Not thread-safe: one caller (the page's worker) at a time."""

    def __init__(self, spec: GameSpec, cfg: GameConfig | None = None, workdir: str | Path | None = None,
                 dream_builder: Callable[[PlayConfig], Any] | None = None):
        self.spec, self.cfg = spec, cfg or GameConfig()
        self._tmp = tempfile.TemporaryDirectory(prefix="smb-game-") if workdir is None else None
        self.workdir = Path(workdir or self._tmp.name)
        play = PlayConfig(spawn=str(spec.spawn.path) if spec.spawn else None, sampler=spec.sampler,
                          record=str(self.workdir / "episodes"), real=spec.mode == "real",
                          compare=spec.mode == "compare", fps=self.cfg.fps, seed=spec.seed,
                          max_episode_steps=self.cfg.max_episode_steps, threads=self.cfg.dream_threads,
                          level=(spec.spawn.level if spec.spawn and _is_nes_level(spec.spawn.level) else "1-1"))
        real_builder = None
        if spec.world in ("level", "level_dream"):
            if spec.level is None:
                raise ValueError("a level world needs a level")
            if spec.world == "level_dream":
                from smbwm.envs.level_env import spawn_from_level
                play.spawn = str(spawn_from_level(spec.level.text(), self.workdir / "level_spawn"))
            else:
                from smbwm.envs.level_env import LevelEnv
                text = spec.level.text()
                real_builder = lambda _name: LevelEnv(level_text=text, max_episode_steps=None)  # noqa: E731
        validate(play)
        kw = {"dream_builder": dream_builder} if dream_builder is not None else {}
        self.session = Session(play, real_builder=real_builder, **kw)
        who = spec.agent or "human"
        for side, rec in self.session.recorders.items():
            world = "levels" if spec.world == "level" else ("dream" if side == "dream" else "nes")
            rec.source = f"{world}/{who}"
            rec.attrs["player"] = "src/serve.py"
            rec.level_text = spec.level.text() if spec.level is not None else None
        self.agent = make_agent(spec.agent, spec.seed) if spec.agent else None
        self.sides = self.session.sides
        frames = max(1, int(round(self.cfg.gif_seconds * self.cfg.fps)))
        self.recent: deque[dict[str, bytes]] = deque(maxlen=frames)     # JPEGs per step, the last minute
        self.last: Shown | None = None
        self.steps = 0
        self.lock = threading.Lock()      # a download may come in (HTTP) while the game steps (its worker)

    # --- play ------------------------------------------------------------------------------------
    def reset(self, advance: int = 0) -> Played:
        with self.lock:
            return self._reset(advance)

    def _reset(self, advance: int) -> Played:
        shown = self.session.reset(advance)
        if self.agent is not None:
            self.agent.bind(self.session.real_env or self.session.dream)
            self.agent.reset(self.spec.seed + self.session.episodes)
        return self._played(shown, 0, None)

    def step(self, buttons: int = 0) -> Played:
        """One game step with the person's `buttons`, or the agent's choice when an agent plays."""
        with self.lock:
            return self._step(buttons)

    def _step(self, buttons: int) -> Played:
        text = None
        if self.agent is not None:
            side = self._agent_side()
            buttons = self.agent.act(self.last.images[side], self.last.infos.get(side, {}))
            text = getattr(self.agent, "last_text", None)
        shown = self.session.step(int(buttons) & 0xFF)
        self.steps += 1
        return self._played(shown, int(buttons) & 0xFF, text)

    def _agent_side(self) -> str:
        return "real" if "real" in self.sides else "dream"

    def _played(self, shown: Shown, action: int, text: str | None) -> Played:
        self.last = shown
        jpegs = {side: encode_jpeg(img) for side, img in shown.images.items()}
        self.recent.append(jpegs)
        main = "dream" if "dream" in shown.infos else self.sides[0]
        info = {k: v for k, v in shown.infos.get(main, {}).items() if isinstance(v, (int, float, str, bool))}
        return Played(shown, jpegs, action, text, info)

    # --- downloads -------------------------------------------------------------------------------
    def episode_file(self) -> Path | None:
        """The episode being played, saved now (HDF5, data/episode.py); recording goes on from here."""
        with self.lock:
            return self._episode_file()

    def _episode_file(self) -> Path | None:
        last = self.last
        for side, rec in self.session.recorders.items():
            if rec.finish(stopped=True) is not None and last is not None and side in last.images:
                info = last.infos.get(side, {})
                rec.start(last.images[side], info, str(info.get("level", "")) or self.spec.world)
        saved = self.session.saved_episodes()
        main = [p for p in saved if p.name.startswith(("dream", "levels"))] or saved
        return main[-1] if main else None

    def gif(self) -> bytes:
        """The last minute of play (both sides side by side) as an animated GIF."""
        from PIL import Image
        from smbwm.game.run import write_gif
        with self.lock:
            recent = list(self.recent)
        if not recent:
            raise ValueError("nothing played yet")
        frames = []
        for step in recent:
            row = [np.asarray(Image.open(io.BytesIO(step[s])).convert("RGB")) for s in self.sides if s in step]
            frame = np.concatenate(row, axis=1)
            if self.cfg.gif_scale != 1.0:
                h, w = frame.shape[:2]
                size = (max(1, int(w * self.cfg.gif_scale)), max(1, int(h * self.cfg.gif_scale)))
                frame = np.asarray(Image.fromarray(frame).resize(size, Image.NEAREST))
            frames.append(frame)
        buf = io.BytesIO()
        write_gif(buf, frames, self.cfg.fps)
        return buf.getvalue()

    def close(self) -> None:
        with self.lock:
            self.session.close()
        if self.agent is not None:
            self.agent.close()

    def cleanup(self) -> None:
        """Delete the recorded files (after close)."""
        if self._tmp is not None:
            self._tmp.cleanup()


def _is_nes_level(level: str) -> bool:
    from smbwm.stages import parse_stage
    try:
        parse_stage(level)
        return True
    except ValueError:
        return False
