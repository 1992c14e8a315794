"""The dream: a trained world model behind the same Gymnasium API as the real emulator.

Same action bytes (Discrete(256), NES controller byte), same 240x256x3 uint8 observations. Reset
starts from a spawn (4 real frames and the actions between them); each step runs scroll head,
denoiser and upsampler once. There is no game logic inside: reward is the camera's progress
(pixels scrolled right), and an episode ends (`terminated`) where the checkpoint's end model reads
from the last two frames that the game would be over (models.end_model), where the dream has shown no
Mario for `lost_end_steps` frames in a row (it lost him: the game cannot go on without him), or by
truncation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from smbwm import actions as A
from smbwm.data.spawn import Spawn, SpawnError, list_spawns, load_spawn
from smbwm.models.motion import estimate_scrolls
from smbwm.models.openvino_runtime import OpenVINOUnavailable, apply_backend, resolve_backend
from smbwm.models.sampler import load_sampler
from smbwm.models.mario_sprite import count_marios
from smbwm.models.world_model import WorldModel, count_lost_steps, resolve_checkpoint, to_model, to_uint8
from smbwm.utils.checkpoint import CheckpointError
from smbwm.utils.paths import DEFAULT_SAMPLER, SPAWNS
from smbwm.utils.device import autocast_dtype, pick_device, prepare_module, runtime_precision

DEFAULT_SPAWNS = SPAWNS


class SamplerError(ValueError):
    """A sampler setting this checkpoint cannot run; str() is one line."""

__all__ = ["WorldModelEnv", "CheckpointError", "SamplerError", "SpawnError", "OpenVINOUnavailable", "load_sampler", "resolve_checkpoint",
           "resolve_backend"]


class WorldModelEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 15}

    def __init__(self, checkpoint: str | Path | None = None, spawn_dir: str | Path | None = None,
                 device: str = "auto", denoising_steps: int | None = None, sampler: str = DEFAULT_SAMPLER,
                 max_episode_steps: int = 1000, level: str | None = None, render_mode: str | None = None,
                 report_timings: bool = True, precision: str = "fp32", compile: bool = False,
                 backend: str = "torch", mario_retries: int | None = None, end_episodes: bool = True,
                 tile_snap: int | None = None, lost_end_steps: int = 60, reuse_deep: int | None = None,
                 hud_snap: int | None = None, display_snap: int | None = None, camera_follow: int | None = None):
        self.device = pick_device(device)
        self.checkpoint = resolve_checkpoint(checkpoint)
        model, self.meta = WorldModel.load(self.checkpoint, self.device)
        self.model = prepare_module(model, self.device)
        # fp32 by default: at batch 1 on a CPU, bf16 autocast's faster convolutions pay for dtype
        # conversions (docs/benchmarks.md, scripts/bench_sample.py); "auto" picks bf16 where supported
        self.amp = autocast_dtype(self.device, precision)
        self.sampler = load_sampler(sampler, denoising_steps)
        if mario_retries is not None:           # None: the preset's own
            self.sampler.mario_retries = int(mario_retries)
        if reuse_deep is not None:              # None: the preset's own
            self.sampler.reuse_deep = int(reuse_deep)
        levels = len(self.model.denoiser.cfg.channels)
        if not 0 <= self.sampler.reuse_deep <= levels:
            raise SamplerError(f"reuse_deep must be 0..{levels} (this denoiser's UNet levels), got {self.sampler.reuse_deep}")
        if tile_snap is not None:               # None: the preset's; it needs the checkpoint's tile book
            self.sampler.tile_snap = int(tile_snap)
        if hud_snap is not None:
            self.sampler.hud_snap = int(hud_snap)
        if display_snap is not None:
            self.sampler.display_snap = int(display_snap)
        if camera_follow is not None:
            self.sampler.camera_follow = int(camera_follow)
        self.backend = apply_backend(self.model, backend, self.device, compile, self.sampler.reuse_deep)
        if self.backend == "openvino":
            self.amp = None     # bf16 inside OpenVINO costs no conversions at the graph's edges, unlike autocast
        if compile:
            self._compile()
        self.spawn_dir = Path(spawn_dir) if spawn_dir else DEFAULT_SPAWNS
        self.spawns = list_spawns(self.spawn_dir)
        if level and level != "random":        # collect.py passes its level: prefer spawns of that level
            same = [p for p in self.spawns if _spawn_level(p) == level]
            self.spawns = same or self.spawns
        self.max_episode_steps = max_episode_steps
        # the checkpoint's end model (if any) ends an episode where the game would: Mario dies or takes the flag
        self.end_episodes = end_episodes
        self._spawn_shows_mario = False
        # frames in a row without a sharp Mario after which the episode ends (0: never). The game never
        # hides him that long (a pipe, a pit or a jump above the screen take a second or two), so the
        # dream has lost him; only counted where the spawn's own frame shows him (the detector knows
        # small and big Mario, not fire Mario's colours).
        self.lost_end_steps = int(lost_end_steps)
        if self.lost_end_steps < 0:
            raise ValueError(f"lost_end_steps must be >= 0 (0: never), got {lost_end_steps}")
        self.report_timings = report_timings    # wall-clock timings in info (the only non-deterministic key)
        self.timings_ms: dict = {}
        self.render_mode = render_mode
        self.action_space = gym.spaces.Discrete(256)
        self.observation_space = gym.spaces.Box(0, 255, (240, 256, 3), np.uint8)
        self._mh = torch.tensor(A.MULTI_HOT_TABLE, dtype=torch.float32)
        self.spawn: Spawn | None = None
        self._frame: np.ndarray | None = None
        self._clock: np.ndarray | None = None    # (1, 2) the HUD clock (models.hud_clock), where the book knows it
        self._window = None

    def _compile(self) -> None:
        """torch.compile (inductor) of denoiser and upsampler, warmed up here so that no step stalls: ~30 %
        faster frames on this CPU (bench_sample.py), ~1 min of compiling the first time, seconds once
        inductor's on-disk cache holds the kernels."""
        self.model.denoiser.compile()
        self.model.upsampler.compile()
        c, dev = self.model.context, self.device
        obs = torch.zeros(1, c, 3, 60, 64, device=dev)
        self.model.step(obs, torch.zeros(1, 3, 240, 256, device=dev), torch.zeros(1, c, A.NUM_PLAYING_BUTTONS, device=dev),
                        torch.zeros(1, c - 1, dtype=torch.long, device=dev), self.sampler, self.amp)

    @property
    def denoising_steps(self) -> int:
        return self.sampler.num_steps

    @property
    def precision(self) -> str:
        """What the networks compute in ("bf16", "fp32", ...): play speed on a CPU hangs on it."""
        return runtime_precision(self.backend, self.amp)

    def _pick_spawn(self, choice: Any) -> Spawn:
        if isinstance(choice, Spawn):
            return choice
        if choice is None or choice == "random":
            if not self.spawns:
                raise SpawnError(f"{self.spawn_dir}: no spawn folders (make some: python src/dataset.py spawn EPISODES_DIR "
                                 f"{self.spawn_dir})")
            return load_spawn(self.spawns[int(self.np_random.integers(len(self.spawns)))])
        if isinstance(choice, (int, np.integer)):
            if not self.spawns:
                raise SpawnError(f"{self.spawn_dir}: no spawn folders to index")
            return load_spawn(self.spawns[int(choice) % len(self.spawns)])
        return load_spawn(choice)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.spawn = self._pick_spawn((options or {}).get("spawn"))
        s, c = self.spawn, self.model.context
        dev = self.device
        self._obs = to_model(s.low_res[-c:], dev)[None]                              # (1, c, 3, 60, 64)
        self._full = to_model(s.full_res[-1], dev)[None]                             # (1, 3, 240, 256)
        self._acts = [int(a) for a in s.actions[-c:][:-1]]                           # actions before the last frame
        self._scrolls = torch.as_tensor(estimate_scrolls(s.full_res)[-(c - 1):], dtype=torch.long, device=dev)[None]
        self._gen = torch.Generator(dev).manual_seed(int(self.np_random.integers(2 ** 31)))
        self._t, self._camera = 0, int(s.meta.get("camera_x", 0))
        self._frame = np.array(s.full_res[-1])
        self._lost = count_lost_steps(np.zeros(1, np.int64), count_marios(self._frame[None]))
        self._spawn_shows_mario = self._lost[0] == 0
        self._clock = self.model.start_clock(to_model(s.full_res, dev)[None])   # None: the book knows no clock
        return self._frame.copy(), self._info({})

    def _info(self, timings: dict) -> dict:
        info = {"timings_ms": timings} if self.report_timings else {}
        return {**info, "step": self._t, "spawn": self.spawn.path.name if self.spawn and self.spawn.path else "",
                "camera_x": self._camera, "x_pos": self._camera, **self._time(),
                "level": str(self.spawn.meta.get("level", "")) if self.spawn else ""}

    def _time(self) -> dict:
        """The HUD clock's value, as the game's info has it, where the dream runs one."""
        return {} if self._clock is None or self._clock[0, 0] < 0 else {"time": int(self._clock[0, 0])}

    def step(self, action):
        if self.spawn is None:
            raise RuntimeError("call reset() before step()")
        a = int(action)
        if not 0 <= a <= 255:
            raise ValueError(f"action must be a NES button byte 0..255, got {action!r}")
        acts = self._mh[self._acts + [a]][None].to(self.device)                     # (1, c, 6)
        out = self.model.step(self._obs, self._full, acts, self._scrolls, self.sampler, self.amp, self._gen,
                              lost_steps=self._lost, clock=self._clock)
        self._clock = out.clock if out.clock is not None else self._clock
        marios = out.marios
        if marios is None and self._counts_lost():       # the sampler does not check Mario: count him here
            marios = count_marios(to_uint8(out.full))
        self._lost = count_lost_steps(self._lost, marios)
        self._obs = torch.cat([self._obs[:, 1:], out.low[:, None]], 1)
        self._full = out.full
        self._acts = self._acts[1:] + [a]
        k = int(out.scroll[0])
        self._scrolls = torch.cat([self._scrolls[:, 1:], out.scroll.view(1, 1).long()], 1)
        self._t += 1
        self._camera += k
        self._frame = to_uint8(out.shown[0])
        self.timings_ms = out.timings_ms
        if self.render_mode == "human":
            self.render()
        end = None if out.end_prob is None else float(out.end_prob[0])
        reason = ""
        if self.end_episodes and end is not None and end > self.model.end_model.cfg.threshold:
            reason = "end_model"
        elif self._counts_lost() and self._lost[0] >= self.lost_end_steps:
            reason = "mario_lost"
        elif self.end_episodes and self._clock is not None and self._clock[0, 0] == 0:
            reason = "time_up"           # the game takes a life when its clock runs out
        terminated = bool(reason)
        truncated = self._t >= self.max_episode_steps and not terminated
        return self._frame.copy(), float(k), terminated, truncated, {
            **self._info(out.timings_ms), "scroll": k, "redraws": out.redraws,
            "mario_lost_steps": int(self._lost[0]), "end_prob": end, "end_reason": reason}

    def _counts_lost(self) -> bool:
        """Whether losing Mario ends this episode (an end is asked for and the spawn shows him)."""
        return self.end_episodes and self.lost_end_steps > 0 and self._spawn_shows_mario

    def render(self):
        if self.render_mode == "rgb_array":
            return None if self._frame is None else self._frame.copy()
        if self.render_mode == "human" and self._frame is not None:
            import pygame
            if self._window is None:
                pygame.init()
                self._window = pygame.display.set_mode((512, 480))
            surf = pygame.surfarray.make_surface(self._frame.swapaxes(0, 1))
            self._window.blit(pygame.transform.scale(surf, self._window.get_size()), (0, 0))
            pygame.display.flip()
        return None

    def close(self):
        if self._window is not None:
            import pygame
            pygame.display.quit()
            self._window = None


def _spawn_level(path: Path) -> str | None:
    try:
        import json
        return json.loads((path / "meta.json").read_text()).get("level")
    except (OSError, ValueError, AttributeError):      # AttributeError: meta.json is not an object
        return None
