"""Super Mario Bros on the real NES emulator (nes-py + gym-super-mario-bros), as a Gymnasium env.

nes-py's `SuperMarioBrosEnv` is constructed directly (gym_super_mario_bros.make breaks under gym
0.26). Its per-frame step already skips death animations, area changes and the between-lives
screen; we add frame-skip, copies of the screen, the 5-tuple and RAM in `info`.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any, Sequence

import numpy as np

from smbwm.envs.emulator_env import EmulatorEnv
from smbwm.stages import ALL_STAGES, expand_stages, parse_stage, stage_name

def _make_nes(level: str | None):
    # gym 0.26 (a dependency of nes-py) prints a deprecation banner on import: keep consoles clean.
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        from gym_super_mario_bros.smb_env import SuperMarioBrosEnv
    target = parse_stage(level) if level else None
    return SuperMarioBrosEnv(target=target)


class SuperMarioBrosGym(EmulatorEnv):
    """One level ('1-1'), the whole game (level=None), or a random stage per episode (`stages`).

    info: x_pos, y_pos, world, stage, life, coins, time, status, flag_get, score, level ('W-S'), and
    ram (a copy of the 2 KB NES RAM, for scripted agents and feature extractors).
    """

    def __init__(self, level: str | None = "1-1", stages: Sequence[str] | None = None, random_stages: bool = False,
                 frame_skip: int = 4, max_episode_steps: int | None = None, render_mode: str | None = None):
        super().__init__(frame_skip=frame_skip, max_episode_steps=max_episode_steps, render_mode=render_mode)
        self.random_stages = bool(random_stages or stages)
        self.stages = expand_stages(stages) if stages else (list(ALL_STAGES) if random_stages else [])
        self.level = None if self.random_stages else (None if level in (None, "", "game") else stage_name(level))
        self._nes_by_level: dict[str | None, Any] = {}
        self._nes = None
        self._flag = False
        self._current: str | None = self.level

    @property
    def current_level(self) -> str | None:
        return self._current

    # --- EmulatorEnv hooks -----------------------------------------------------------------------
    def _launch(self) -> None:
        self._current = self.level
        if not self.random_stages:
            self._nes = self._nes_by_level.setdefault(self.level, _make_nes(self.level))

    def _shutdown(self) -> None:
        for nes in self._nes_by_level.values():
            nes.close()
        self._nes_by_level.clear()
        self._nes = None

    def _is_alive(self) -> bool:
        return self._nes is not None and getattr(self._nes, "_env", None) is not None

    def _reset_game(self) -> None:
        if self.random_stages:
            self._current = self.stages[int(self.np_random.integers(len(self.stages)))]
            if self._current not in self._nes_by_level:
                self._nes_by_level[self._current] = _make_nes(self._current)
            self._nes = self._nes_by_level[self._current]
        self._nes.reset()
        self._flag = False

    def _advance(self, action: int) -> tuple[float, bool]:
        _, reward, done, info = self._nes.step(action)
        self._flag = bool(info.get("flag_get", False))
        return float(reward), bool(done)

    def _screen(self) -> np.ndarray:
        return self._nes.screen

    def _game_info(self) -> dict[str, Any]:
        return self._read_info()

    # --- helpers ---------------------------------------------------------------------------------
    @property
    def ram(self) -> np.ndarray:
        """Live view of the NES RAM (do not keep it: it changes every frame)."""
        return self._nes.ram

    def _read_info(self) -> dict[str, Any]:
        nes = self._nes
        info = dict(
            x_pos=int(nes._x_position), y_pos=int(nes._y_position), world=int(nes._world), stage=int(nes._stage),
            life=int(nes._life), coins=int(nes._coins), time=int(nes._time), status=nes._player_status,
            flag_get=self._flag or bool(nes._flag_get), score=int(nes._score),
        )
        info["camera_x"] = int(nes.ram[0x071A]) * 256 + int(nes.ram[0x071C])  # left edge of the screen in the level
        info["level"] = f"{info['world']}-{info['stage']}"
        info["ram"] = np.array(nes.ram, copy=True)
        return info
