"""The window: a header (FPS, step, denoising steps, buttons held), one or two game panels, a help line."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from smbwm import actions as A
from smbwm.game.keymap import HELP_LINE

FRAME_H, FRAME_W = 240, 256
HEADER_H, FOOTER_H, GAP = 26, 22, 8
TITLES = {"dream": "DREAM (world model)", "real": "REAL (NES emulator)"}
BG, FG, DIM, WARN, ON = (18, 18, 24), (235, 235, 235), (150, 150, 160), (255, 190, 60), (120, 230, 120)


@dataclass
class Hud:
    fps: float = 0.0
    target_fps: float = 15.0
    step: int = 0
    denoising_steps: int | None = None
    sampler: str = ""
    buttons: int = 0
    start_label: str = ""
    paused: bool = False
    busy: bool = False
    note: str = ""
    gen_ms: dict[str, float] = field(default_factory=dict)


class Renderer:
    def __init__(self, sides: list[str], scale: int, caption: str = "smb-world-model"):
        import pygame
        self.pg = pygame
        self.sides, self.scale = sides, scale
        pw, ph = FRAME_W * scale, FRAME_H * scale
        self.panel = (pw, ph)
        self.titles_h = 18 if len(sides) > 1 else 0
        width = max(pw * len(sides) + GAP * (len(sides) - 1), 640)
        self.size = (width, HEADER_H + self.titles_h + ph + FOOTER_H)
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption(caption)
        self.screen = pygame.display.set_mode(self.size)
        self.font = pygame.font.Font(None, 22)
        self.small = pygame.font.Font(None, 18)
        self._surfaces: dict[str, object] = {}

    def set_frame(self, side: str, frame: np.ndarray) -> None:
        """Convert a (240, 256, 3) RGB frame once, when it arrives (not on every window refresh)."""
        surf = self.pg.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        self._surfaces[side] = self.pg.transform.scale(surf, self.panel)

    def header_text(self, hud: Hud) -> str:
        parts = [f"FPS {hud.fps:4.1f}/{hud.target_fps:g}", f"step {hud.step}"]
        if hud.denoising_steps is not None:
            parts.append(f"denoise {hud.denoising_steps}" + (f" ({hud.sampler})" if hud.sampler else ""))
        parts.append(f"buttons {A.name(hud.buttons)}")
        if hud.start_label:
            parts.append(hud.start_label)
        return "   ".join(parts)

    def draw(self, hud: Hud) -> None:
        pg, s = self.pg, self.screen
        s.fill(BG)
        s.blit(self.font.render(self.header_text(hud), True, FG), (8, 5))
        flag = "PAUSED (. steps)" if hud.paused else ("generating..." if hud.busy and hud.fps < 1 else "")
        if flag:
            img = self.font.render(flag, True, WARN)
            s.blit(img, (self.size[0] - img.get_width() - 8, 5))
        top = HEADER_H + self.titles_h
        for i, side in enumerate(self.sides):
            x = i * (self.panel[0] + GAP)
            if self.titles_h:
                s.blit(self.small.render(TITLES.get(side, side), True, ON if side == "real" else WARN), (x + 4, HEADER_H))
            surf = self._surfaces.get(side)
            if surf is None:
                pg.draw.rect(s, (40, 40, 48), (x, top, *self.panel))
                s.blit(self.font.render("loading...", True, DIM), (x + 10, top + 10))
            else:
                s.blit(surf, (x, top))
        footer = hud.note or HELP_LINE
        s.blit(self.small.render(footer, True, WARN if hud.note else DIM), (8, self.size[1] - FOOTER_H + 5))
        pg.display.flip()

    def snapshot(self) -> np.ndarray:
        """The whole window as (H, W, 3) uint8 (for headless runs and screenshots)."""
        return self.pg.surfarray.array3d(self.screen).swapaxes(0, 1).copy()

    def close(self) -> None:
        self.pg.display.quit()
