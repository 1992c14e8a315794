"""LevelEnv: a MarioGPT level played with NES-like physics, rendered in the NES look.

Same base, action bytes, frame-skip, observation and info keys as the emulator env
(`envs.smb_env.SuperMarioBrosGym`), so every agent and the collector work on it unchanged.

Which level (constructor arguments, first match wins):
    level_text="..."           the 14-row ASCII text itself
    level_file="level.txt"     a level file
    level="gpt:<sha12>"        <level_dir>/<sha12>.txt (levels the collector generated from prompts)
    level="path/to/x.txt"      a level file
    level="corpus:<start>"     the corpus window starting at that column
    level=None|"corpus"|"random"|"1-1"   a random corpus window per reset (seeded by reset(seed))

A level as a spawn folder for the player: `python src/dataset.py spawn --from level level.txt OUT_DIR`.
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from smbwm.envs.emulator_env import EmulatorEnv
from smbwm.envs.level_physics import LevelState, new_state, step_frame
from smbwm.envs.level_render import TILE, LevelRenderer, sprite

CORPUS_SPECS = ("", "corpus", "random", "1-1")


def level_id(text: str) -> str:
    """Content id of a level, as stored in episode files ("gpt:<sha1[:12]>")."""
    return "gpt:" + hashlib.sha1(text.strip("\n").encode()).hexdigest()[:12]


def _corpus():
    from smbwm.levels.corpus import corpus_level
    return corpus_level()


def corpus_starts(width: int) -> np.ndarray:
    """Window starts in the corpus where Mario has ground under his spawn point."""
    corpus = _corpus()
    ground = np.array([r == "X" for r in corpus.rows[-1]])
    ok = ground[:-3] & ground[1:-2] & ground[2:-1] & ground[3:]
    starts = np.nonzero(ok)[0]
    return starts[starts <= corpus.width - width]


class LevelEnv(EmulatorEnv):
    """info: x_pos, y_pos, world, stage, life, coins, time, status, flag_get, score, camera_x, level
    (the level id), death ("gap" | "enemy" | "time" | "")."""

    def __init__(self, level: str | None = None, level_text: str | None = None, level_file: str | None = None,
                 level_dir: str | None = None, corpus_width: int = 150, frame_skip: int = 4,
                 max_episode_steps: int | None = None, render_mode: str | None = None):
        super().__init__(frame_skip=frame_skip, max_episode_steps=max_episode_steps, render_mode=render_mode)
        from smbwm.levels.level import LevelError, load_level, parse_level
        self.corpus_width = int(corpus_width)
        self.prompt: str | None = None
        self._fixed: tuple[str, str] | None = None     # (id, text) when the level does not change
        self._corpus_start: int | None = None
        spec = "" if level is None else str(level).strip()
        try:
            if level_text:
                text = parse_level(level_text).text()
                self._fixed = (level_id(text), text)
            elif level_file or spec.endswith(".txt"):
                text = load_level(level_file or spec).text()
                self._fixed = (level_id(text), text)
            elif spec.startswith("gpt:"):
                if not level_dir:
                    raise ValueError(f"level {spec!r} needs level_dir (the folder with <sha12>.txt files)")
                text = load_level(Path(level_dir) / f"{spec[4:]}.txt").text()
                self._fixed = (spec, text)
                meta = Path(level_dir) / f"{spec[4:]}.json"      # written by the collector's generator
                if meta.exists():
                    self.prompt = json.loads(meta.read_text()).get("prompt")
            elif re.fullmatch(r"corpus:\d+", spec):
                self._corpus_start = int(spec.split(":")[1])
            elif spec.lower() not in CORPUS_SPECS:
                raise ValueError(f"unknown level {spec!r}: use level_text, level_file, a .txt path, gpt:<sha12>, "
                                 "corpus or corpus:<start column>")
        except LevelError as e:
            raise ValueError(str(e)) from None
        self.level_name = self._fixed[0] if self._fixed else "corpus"
        self.level_text: str | None = self._fixed[1] if self._fixed else None
        self.state: LevelState | None = None
        self._renderer: LevelRenderer | None = None
        self._renderer_key: str | None = None

    # --- EmulatorEnv hooks -----------------------------------------------------------------------
    def _launch(self) -> None:
        from smbwm.envs.level_render import chr_tiles
        chr_tiles()                                    # fail early if the ROM graphics are missing

    def _shutdown(self) -> None:
        self._renderer = None

    def _is_alive(self) -> bool:
        return True

    def _reset_game(self) -> None:
        if self._fixed is None:
            corpus = _corpus()
            start = self._corpus_start
            if start is None:
                starts = corpus_starts(self.corpus_width)
                start = int(starts[int(self.np_random.integers(len(starts)))])
            start = max(0, min(start, corpus.width - 1))
            self.level_text = corpus.window(start, self.corpus_width).text()
            self.level_name = f"corpus:{start}+{self.corpus_width}"
        rows = self.level_text.strip("\n").split("\n")
        self.state = new_state(rows)
        if self._renderer_key != self.level_name:
            self._renderer = None
            self._renderer_key = self.level_name

    def _advance(self, action: int) -> tuple[float, bool]:
        return step_frame(self.state, action), self.state.over

    def _screen(self) -> np.ndarray:
        return self.render_state(self.state)

    def _game_info(self) -> dict[str, Any]:
        s = self.state
        return dict(x_pos=int(s.mario.x), y_pos=int(255 - s.mario.y), world=0, stage=0, life=1 if s.dead else 2,
                    coins=s.coins, time=s.time, status="small", flag_get=s.flag, score=s.score,
                    camera_x=int(s.camera_x), level=self.level_name, death=s.death_cause)

    # --- planner API -----------------------------------------------------------------------------
    def clone_state(self) -> LevelState:
        """An independent copy of the game state (restore it with restore_state)."""
        if self.state is None:
            raise RuntimeError("clone_state() before reset()")
        return self.state.clone()

    def restore_state(self, state: LevelState) -> None:
        self.state = state.clone()
        self._needs_reset = state.over
        self._last_obs = self._observe()

    def episode_attrs(self) -> dict[str, Any]:
        """Facts about the episode for the episode file (the level actually played)."""
        out = {"level": self.level_name, "level_width": self.state.width if self.state else 0}
        if self.prompt:
            out["prompt"] = self.prompt
        return out

    # --- rendering -------------------------------------------------------------------------------
    def render_state(self, s: LevelState) -> np.ndarray:
        grid = np.frombuffer(bytes(s.tiles), np.uint8).reshape(14, s.width)
        if self._renderer is None:
            self._renderer = LevelRenderer(grid, pole_col=int(s.pole_x) // TILE)
        return self._renderer.frame(grid, s.camera_x, self._sprites(s),
                                    {"score": s.score, "coins": s.coins, "world": "GPT", "time": s.time},
                                    bumps=[(r, c, t) for r, c, t in s.bumps])

    @staticmethod
    def _sprites(s: LevelState) -> list:
        out = []
        for e in s.enemies:
            if e[4] == 1:
                out.append((sprite("goomba", "walk", (s.frame // 8) % 2 == 1), e[0], e[1]))
            elif e[4] == 2:
                out.append((sprite("goomba", "flat"), e[0], e[1] + 8))
        m = s.mario
        if s.dead:
            frame = "dead"
        elif not m.on_ground:
            frame = "jump"
        elif abs(m.vx) < 0.05:
            frame = "stand"
        elif m.vx * m.facing < 0:
            frame = "skid"
        else:
            frame = ("walk1", "walk2", "walk3")[int(m.walk_phase // 8) % 3]
        out.append((sprite("mario", frame, m.facing < 0), m.x, m.y))
        return out


def spawn_from_level(level_text: str, out_dir: str | Path, warmup: tuple[int, ...] = (0, 0, 0, 0)) -> Path:
    """A spawn folder (data/spawn.py format) at the start of a level: 4 frames, the actions between
    them, and the level text, so a person can play the level in the dream."""
    from smbwm.data.lowres import downsample
    from smbwm.data.spawn import Spawn, save_spawn
    env = LevelEnv(level_text=level_text)
    frame, _ = env.reset(seed=0)
    frames = [frame]
    for a in warmup[:3]:
        frame, _, terminated, truncated, _ = env.step(a)
        frames.append(frame)
        if (terminated or truncated) and len(frames) < 4:
            env.close()
            raise ValueError(f"the level ends within {len(frames) - 1} steps of its start (too short for a "
                             "spawn: 4 frames needed)")
    env.close()
    full = np.stack(frames)
    # no replay_actions: the real emulator cannot replay a MarioGPT level (play.py --compare says so)
    meta = {"source": "levels", "level": env.level_name, "episode": None, "start": 0,
            "level_actions": [int(a) for a in warmup[:3]], "level_text": env.level_text}
    spawn = Spawn(full, downsample(full), np.array(warmup[:4], np.uint8), meta=meta)
    out = save_spawn(spawn, out_dir)
    (Path(out) / "level.txt").write_text(env.level_text)
    return out

