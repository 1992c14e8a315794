"""Whole rollouts for the MCP tools: the dream from a spawn (given buttons or an agent) and a level
played by an agent, on the same `LiveGame` the web page plays; the models load once per process.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any, Callable

import numpy as np

from smbwm.game.config import PlayConfig
from smbwm.utils.paths import CHECKPOINTS
from smbwm.serving.games import GameConfig, GameSpec, LiveGame

MODEL_CARD = CHECKPOINTS / "README.md"
CARD_SECTIONS = ("Fidelity (", "Where it stands")     # the model card's sections model_card() returns


@dataclass
class Rollout:
    frames: dict[str, list[np.ndarray]]       # side -> (240, 256, 3) uint8 frames, the start frame first
    actions: list[int]
    infos: list[dict[str, Any]]               # the main side's info after each step
    game: LiveGame
    agent_texts: list[str] = field(default_factory=list)

    def gif(self) -> bytes:
        return self.game.gif()

    def cleanup(self) -> None:
        """Delete the game's recorded episodes (a tool returns pictures and figures, not files)."""
        self.game.cleanup()

    def strip(self, n: int = 8) -> bytes:
        """PNG: n frames of the main side evenly over the rollout, left to right."""
        from PIL import Image
        side = self.main_side
        idx = np.linspace(0, len(self.frames[side]) - 1, min(n, len(self.frames[side]))).round().astype(int)
        buf = io.BytesIO()
        Image.fromarray(np.concatenate([self.frames[side][i] for i in idx], axis=1)).save(buf, format="PNG")
        return buf.getvalue()

    @property
    def main_side(self) -> str:
        return "dream" if "dream" in self.frames else next(iter(self.frames))


class Rollouts:
    """One rollout at a time (the CPU is the limit); the world model is loaded once per sampler."""

    def __init__(self, gif_scale: float = 1.0):
        self.gif_scale = gif_scale
        self._dreams: dict[tuple, Any] = {}
        self._lock = Lock()

    def dream_builder(self, cfg: PlayConfig) -> Any:
        key = (cfg.checkpoint, cfg.sampler, cfg.denoising_steps)
        if key not in self._dreams:
            from smbwm.game.factory import make_dream
            self._dreams[key] = make_dream(cfg)
        return self._dreams[key]

    def run(self, spec: GameSpec, steps: int, actions: list[int] | None = None,
            on_step: Callable[[int], None] | None = None) -> Rollout:
        """`steps` steps (fewer if the episode ends) with `actions` cycled, or the spec's agent."""
        with self._lock:
            game = LiveGame(spec, GameConfig(gif_seconds=steps / 15.0 + 1, gif_scale=self.gif_scale,
                                             max_episode_steps=None), dream_builder=self.dream_builder)
            try:
                played = game.reset(0)
                frames = {s: [img] for s, img in played.shown.images.items()}
                out = Rollout(frames, [], [], game)
                for t in range(steps):
                    played = game.step(actions[t % len(actions)] if actions else 0)
                    for s, img in played.shown.images.items():
                        frames[s].append(img)
                    out.actions.append(played.action)
                    out.infos.append(played.shown.infos.get(out.main_side, {}))
                    if played.agent_text:
                        out.agent_texts.append(played.agent_text)
                    if on_step is not None:
                        on_step(t + 1)
                    if played.shown.ended:
                        break
            finally:
                game.close()
        return out


def playability(frames: np.ndarray) -> dict[str, Any]:
    """The playability figures of a rollout's frames (T, 240, 256, 3): camera travel, Mario shown."""
    from smbwm.evaluation.playability import frame_playability
    return frame_playability(frames)


def level_outcome(r: Rollout, level_px: int) -> dict[str, Any]:
    """How far the agent got on a level: x reached, flag, death."""
    xs = [int(i.get("x_pos", 0)) for i in r.infos] or [0]
    last = r.infos[-1] if r.infos else {}
    return {"steps": len(r.actions), "x_reached": max(xs), "level_px": level_px, "flag": bool(last.get("flag_get")),
            "death": str(last.get("death", "") or ""), "ended": bool(last.get("flag_get") or last.get("death"))}


def model_card() -> str:
    """The shipped model's card: its header and the fidelity and where-it-stands sections."""
    try:
        text = MODEL_CARD.read_text()
    except OSError as e:
        return f"no model card at checkpoints/README.md ({e.strerror})"
    head, *sections = text.split("\n## ")
    keep = [s for s in sections if s.startswith(CARD_SECTIONS)]
    return "\n## ".join([head, *keep]).strip() + f"\n\n(full card: {Path('checkpoints/README.md')})"
