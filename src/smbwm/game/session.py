"""What is being played: the dream, the real emulator, or both in lockstep (compare), from a start.

A start is a spawn folder or the start of an emulator level. In compare mode both sides begin in the
same state: the real game is replayed to the spawn (`data.spawn_tools.replay_to_spawn`), or, for a
level start / a spawn without emulator replay, the dream is seeded with the real game's first four
frames. `reset` and `step` run in the player's worker thread; they touch no pygame state.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smbwm.data.lowres import downsample
from smbwm.data.spawn import CONTEXT, Spawn, SpawnError, list_spawns
from smbwm.data.spawn_tools import replay_to_spawn
from smbwm.game.config import PlayConfig, PlayError
from smbwm.game.factory import DreamBuilder, RealBuilder, load_spawn_clean, make_dream, make_real_factory, one_line
from smbwm.game.record import Recorder
from smbwm.stages import ALL_STAGES, stage_name
from smbwm.utils.paths import SPAWNS

SOURCES = {"dream": "dream/human", "real": "nes/human"}


@dataclass
class Start:
    spawn: Path | None = None
    level: str | None = None

    @property
    def label(self) -> str:
        return self.spawn.name if self.spawn is not None else f"level {self.level}"


@dataclass
class Shown:
    """One update of the screen: a frame per side, after a reset (action None) or a step."""
    images: dict[str, np.ndarray]
    step: int
    action: int | None = None
    ended: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str = ""
    infos: dict[str, dict] = field(default_factory=dict)   # each side's env info (agents read the game state)


class Session:
    def __init__(self, cfg: PlayConfig, dream_builder: DreamBuilder = make_dream, real_builder: RealBuilder | None = None):
        self.cfg = cfg
        self.sides = {"dream": ["dream"], "real": ["real"], "compare": ["dream", "real"]}[cfg.mode]
        self.dream = dream_builder(cfg) if "dream" in self.sides else None
        self._make_real = real_builder or make_real_factory(cfg)
        self._real_envs: dict[str, Any] = {}
        self._real: Any = None
        self.rng = np.random.default_rng(cfg.seed)
        self.random_start = cfg.spawn == "random"
        self.starts, self.index = self._resolve_starts()
        self.step_count = 0
        self.episodes = 0
        self._pool: ThreadPoolExecutor | None = None
        self.recorders: dict[str, Recorder] = {}
        if cfg.record:
            try:
                Path(cfg.record).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise PlayError(f"--record {cfg.record}: cannot create it ({e.strerror})") from None
            base = {"player": "src/play.py", "mode": cfg.mode, "seed": cfg.seed, "fps": cfg.fps}
            dream = {"checkpoint": cfg.checkpoint or "checkpoints/", "sampler": cfg.sampler,
                     "denoising_steps": self.denoising_steps or 0}
            self.recorders = {s: Recorder(Path(cfg.record), SOURCES[s], {**base, **(dream if s == "dream" else {})})
                              for s in self.sides}

    # --- starts ----------------------------------------------------------------------------------
    def _resolve_starts(self) -> tuple[list[Start], int]:
        spec, index = self.cfg.spawn, 0
        if spec not in (None, "random") and not str(spec).isdigit():
            p = Path(spec)
            looks_like_one = p.is_dir() and any((p / f).exists() for f in ("act.npy", "low_res.npy", "meta.json"))
            paths = [p] if looks_like_one or p.is_file() else list_spawns(p)
            if not paths:
                raise PlayError(f"--spawn {spec}: no spawn folders there (each needs full_res.npy and act.npy); "
                                "make some with `python src/dataset.py spawn`")
        elif self.dream is not None:
            paths = [Path(s) for s in getattr(self.dream, "spawns", [])]
        elif spec is not None:     # real mode with an index or 'random': the repo's spawns
            paths = list_spawns(SPAWNS)
        else:
            paths = []
        if spec is not None and str(spec).isdigit():
            index = int(spec)
            if index >= len(paths):
                have = f"there are only {len(paths)} spawns (indices 0..{len(paths) - 1})" if paths else "there are no spawns"
                raise PlayError(f"--spawn {spec}: {have}; make some with `python src/dataset.py spawn` or pass a spawn folder")
        if paths:
            return [Start(spawn=p) for p in paths], index
        first = ALL_STAGES.index(stage_name(self.cfg.level))
        return [Start(level=lv) for lv in ALL_STAGES[first:] + ALL_STAGES[:first]], 0

    @property
    def start(self) -> Start:
        return self.starts[self.index]

    @property
    def denoising_steps(self) -> int | None:
        return getattr(self.dream, "denoising_steps", None) if self.dream is not None else None

    @property
    def real_env(self) -> Any:
        """The emulator (or level simulator) being played, after a reset; None in dream mode."""
        return self._real

    def _real_env(self, level: str) -> Any:
        if level not in self._real_envs:
            self._real_envs[level] = self._make_real(level)
        return self._real_envs[level]

    def _spawn_from_level(self, env: Any, level: str) -> tuple[Spawn, np.ndarray, dict]:
        """Reset the emulator at `level` and hold NOOP for the context: the dream's start at a level."""
        obs, info = env.reset(seed=self.cfg.seed)
        frames = [obs]
        for _ in range(CONTEXT - 1):
            obs, _, _, _, info = env.step(0)
            frames.append(obs)
        full = np.stack(frames)
        meta = {"source": "nes", "level": level, "replay_actions": [0] * (CONTEXT - 1),
                "camera_x": int(info.get("camera_x", 0))}
        return Spawn(full, downsample(full), np.zeros(CONTEXT, np.uint8), meta=meta), obs, info

    # --- play ------------------------------------------------------------------------------------
    def reset(self, advance: int = 0) -> Shown:
        """Start a new episode (at the next start if `advance`); closes the recorded one."""
        for r in self.recorders.values():
            r.finish(stopped=True)
        if self.random_start:
            self.index = int(self.rng.integers(len(self.starts)))
        else:
            self.index = (self.index + advance) % len(self.starts)
        start = self.start
        spawn = load_spawn_clean(start.spawn) if start.spawn is not None else None
        level = str(spawn.meta.get("level", self.cfg.level)) if spawn is not None else str(start.level)
        images, infos, note = {}, {}, ""
        if "real" in self.sides or spawn is None:
            real_level = level
            try:
                stage_name(level)
            except ValueError:
                real_level, note = self.cfg.level, f"spawn level {level!r} is not an emulator level: real game at {self.cfg.level}"
            env = self._real_env(real_level)
            if spawn is not None and spawn.replay_actions is not None and not note:
                try:
                    obs = replay_to_spawn(env, spawn)
                except SpawnError as e:
                    raise PlayError(f"{one_line(e)}; pick another spawn with --spawn") from None
                info = emulator_info(env)
            elif self.dream is not None:
                if spawn is not None:
                    note = note or "spawn has no emulator replay: both sides start at the level start"
                spawn, obs, info = self._spawn_from_level(env, real_level)
                level = real_level
            else:
                obs, info = env.reset(seed=self.cfg.seed)
            if "real" in self.sides:
                self._real = env
                images["real"], infos["real"] = obs, info
        if self.dream is not None:
            try:
                images["dream"], infos["dream"] = self.dream.reset(seed=self.cfg.seed, options={"spawn": spawn})
            except SpawnError as e:
                raise PlayError(f"{one_line(e)}; make spawns with `python src/dataset.py spawn` or pick another with --spawn") from None
        self.step_count = 0
        self.episodes += 1
        for side, r in self.recorders.items():
            r.start(images[side], infos[side], level if side == "dream" else str(infos[side].get("level", level)),
                    {"spawn": str(start.spawn or "")})
        return Shown(images=images, step=0, note=note, infos=infos)

    def _step_side(self, side: str, action: int) -> tuple:
        env = self.dream if side == "dream" else self._real
        t0 = time.perf_counter()
        out = env.step(int(action))
        return (*out, (time.perf_counter() - t0) * 1000)

    def step(self, action: int) -> Shown:
        images, timings, infos, ended = {}, {}, {}, False
        limit = self.cfg.max_episode_steps
        if len(self.sides) == 2:
            # compare: the emulator steps in a helper thread while the dream runs here (both release
            # the GIL in native code), so the pair costs about the dream's time rather than the sum
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="real-env")
            real = self._pool.submit(self._step_side, "real", action)
            results = {"dream": self._step_side("dream", action), "real": real.result()}
        else:
            results = {side: self._step_side(side, action) for side in self.sides}
        for side in self.sides:
            obs, reward, terminated, truncated, info, ms = results[side]
            truncated = bool(truncated) or (limit is not None and self.step_count + 1 >= limit and not terminated)
            timings[f"{side}_ms"] = ms
            for k, v in (info.get("timings_ms") or {}).items():
                timings[f"{side}/{k}"] = float(v)
            if side in self.recorders:
                self.recorders[side].step(action, reward, terminated, truncated, obs, info)
            images[side], infos[side] = obs, info
            ended = ended or bool(terminated or truncated)
        self.step_count += 1
        if ended:
            for r in self.recorders.values():
                r.finish(stopped=True)
        return Shown(images=images, step=self.step_count, action=int(action), ended=ended, timings_ms=timings,
                     infos=infos)

    def saved_episodes(self) -> list[Path]:
        return [p for r in self.recorders.values() for p in r.saved]

    def close(self) -> None:
        """Commit recordings and close every environment (safe to call twice)."""
        for r in self.recorders.values():
            r.finish(stopped=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for env in [self.dream, *self._real_envs.values()]:
            if env is not None:
                env.close()


def emulator_info(env: Any) -> dict[str, Any]:
    """The emulator's info for its current frame (after a replay, which returns only the frame)."""
    read = getattr(getattr(env, "unwrapped", env), "_game_info", None)
    return dict(read()) if callable(read) else {}
