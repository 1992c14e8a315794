"""An emulator-backed Gymnasium env base (in the spirit of gym-mupen64plus).

The base owns the emulator's lifetime (lazy start, reset, close, health checks) and the parts every
game shares (frame-skip, copying frames out of the emulator's buffer, the Gymnasium 5-tuple). A
subclass supplies the game: how to start it, what one frame does, reward, end of episode, info.
"""
from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

FRAME_SHAPE = (240, 256, 3)


class EmulatorError(RuntimeError):
    """The emulator died, failed to start, or returned garbage."""


class EmulatorEnv(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 15}

    def __init__(self, frame_skip: int = 4, max_episode_steps: int | None = None, render_mode: str | None = None):
        if frame_skip < 1:
            raise ValueError(f"frame_skip must be >= 1, got {frame_skip}")
        self.frame_skip = int(frame_skip)
        self.max_episode_steps = max_episode_steps
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, FRAME_SHAPE, np.uint8)
        self.action_space = spaces.Discrete(256)  # NES controller byte
        self._running = False
        self._steps = 0
        self._needs_reset = True
        self._last_obs: np.ndarray | None = None
        self._window = None

    # --- the game's part -------------------------------------------------------------------------
    def _launch(self) -> None:
        """Start the emulator (called lazily before the first reset)."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Stop the emulator and free it."""
        raise NotImplementedError

    def _is_alive(self) -> bool:
        """True if the emulator answers."""
        raise NotImplementedError

    def _reset_game(self) -> None:
        """Bring the game to the start of an episode (menus skipped)."""
        raise NotImplementedError

    def _advance(self, action: int) -> tuple[float, bool]:
        """Run one emulator frame with the button byte held; return (reward, episode_over)."""
        raise NotImplementedError

    def _screen(self) -> np.ndarray:
        """The current (240, 256, 3) uint8 screen; may be a view the next frame overwrites."""
        raise NotImplementedError

    def _game_info(self) -> dict[str, Any]:
        return {}

    # --- the shared part -------------------------------------------------------------------------
    def _ensure_running(self) -> None:
        if not self._running:
            try:
                self._launch()
            except Exception as e:  # noqa: BLE001 - one clear error for any start failure
                raise EmulatorError(f"{type(self).__name__}: the emulator failed to start: {e}") from e
            self._running = True
        elif not self._is_alive():
            raise EmulatorError(f"{type(self).__name__}: the emulator is no longer running (closed or crashed); "
                                "create a new environment")

    def _observe(self) -> np.ndarray:
        screen = self._screen()
        if screen is None or screen.shape != FRAME_SHAPE:
            raise EmulatorError(f"{type(self).__name__}: emulator returned a screen of shape "
                                f"{None if screen is None else screen.shape}, expected {FRAME_SHAPE}")
        return np.array(screen, dtype=np.uint8, copy=True)  # nes-py reuses the buffer: always copy

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._ensure_running()
        try:
            self._reset_game()
        except EmulatorError:
            raise
        except Exception as e:  # noqa: BLE001
            raise EmulatorError(f"{type(self).__name__}: the emulator failed during reset: {e}") from e
        self._steps = 0
        self._needs_reset = False
        self._last_obs = self._observe()
        return self._last_obs, self._game_info()

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        action = int(action)
        if not 0 <= action <= 255:
            raise ValueError(f"action must be a NES button byte 0..255, got {action}")
        self._ensure_running()
        total, over = 0.0, False
        try:
            for _ in range(self.frame_skip):
                r, over = self._advance(action)
                total += r
                if over:
                    break
        except EmulatorError:
            raise
        except Exception as e:  # noqa: BLE001
            raise EmulatorError(f"{type(self).__name__}: the emulator failed during step: {e}") from e
        self._steps += 1
        truncated = (not over) and self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        self._needs_reset = over or truncated
        self._last_obs = self._observe()
        if self.render_mode == "human":
            self.render()
        return self._last_obs, total, over, truncated, self._game_info()

    def render(self):
        if self._last_obs is None:
            return None
        if self.render_mode == "human":
            import pygame  # local: only a human viewer needs a window
            if self._window is None:
                pygame.init()
                self._window = pygame.display.set_mode((FRAME_SHAPE[1] * 2, FRAME_SHAPE[0] * 2))
            surf = pygame.surfarray.make_surface(self._last_obs.swapaxes(0, 1))
            self._window.blit(pygame.transform.scale(surf, self._window.get_size()), (0, 0))
            pygame.display.flip()
            pygame.event.pump()
            return None
        return self._last_obs.copy()

    def close(self):
        if self._running:
            try:
                self._shutdown()
            finally:
                self._running = False
        self._needs_reset = True
        if self._window is not None:
            import pygame
            pygame.display.quit()
            self._window = None
