"""MarioGPT's front end on our generator: prompt (composed or typed), temperature, width -> a level,
its ASCII and an overview PNG. The generator loads once, on the first request."""
from __future__ import annotations

import io
from dataclasses import dataclass
from threading import Lock
from typing import Any

from smbwm.levels.level import Level
from smbwm.levels.prompts import DEFAULTS, KEYWORDS, ORDER, PromptError, parse_prompt
from smbwm.serving.catalog import ServeError, check_number


@dataclass
class LevelMakerConfig:
    min_width: int = 16          # columns (16 px each); a screen is 16 columns
    max_width: int = 300         # bounds one request's CPU time (tokens = 14 x columns)
    min_temperature: float = 0.1
    max_temperature: float = 2.0
    max_prompt_chars: int = 200
    top_k: int = 8               # as generate_level.py's default for the shipped generator


@dataclass
class MadeLevel:
    level: Level
    prompt: str          # the prompt as the generator read it (omitted parts filled in)
    temperature: float
    width: int

    def png(self) -> bytes:
        from PIL import Image
        from smbwm.levels.render import level_image
        buf = io.BytesIO()
        Image.fromarray(level_image(self.level)).save(buf, format="PNG")
        return buf.getvalue()


def suggestions() -> dict[str, Any]:
    """The prompt composer's choices (MarioGPT's get_level_suggestions) and a few ready prompts."""
    parts = {k: list(dict.fromkeys(KEYWORDS[k])) for k in ORDER}
    examples = ["many pipes, many enemies, little blocks, low elevation",
                "no pipes, some enemies, many blocks, high elevation",
                "some pipes, no enemies, some blocks, low elevation",
                "little pipes, little enemies, little blocks, high elevation"]
    return {"parts": parts, "defaults": dict(DEFAULTS), "examples": examples,
            "format": "<amount> pipes, <amount> enemies, <amount> blocks, <low|high> elevation (any order; "
                      "omitted parts take the defaults)"}


class LevelMaker:
    def __init__(self, cfg: LevelMakerConfig | None = None, checkpoint: str | None = None):
        self.cfg = cfg or LevelMakerConfig()
        self.checkpoint = checkpoint
        self._gen = None
        self._lock = Lock()          # one generation at a time: the generator is not re-entrant and CPU is scarce

    def validate(self, prompt: Any, temperature: Any, width: Any) -> tuple[str, float, int]:
        c = self.cfg
        if not isinstance(prompt, str):
            raise ServeError(f"prompt must be text, got {type(prompt).__name__}")
        if len(prompt) > c.max_prompt_chars:
            raise ServeError(f"prompt is {len(prompt)} characters; at most {c.max_prompt_chars}")
        try:
            parsed = parse_prompt(prompt)
        except PromptError as e:
            raise ServeError(str(e)) from None
        t = check_number("temperature", temperature, c.min_temperature, c.max_temperature)
        w = check_number("width", width, c.min_width, c.max_width, integer=True)
        return str(parsed), float(t), int(w)

    def generator(self):
        from smbwm.levels.generate import DEFAULT_CHECKPOINT, LevelGenerator
        from smbwm.levels.generator import GeneratorError
        if self._gen is None:
            try:
                self._gen = LevelGenerator.load(self.checkpoint or DEFAULT_CHECKPOINT)
            except GeneratorError as e:
                raise ServeError(str(e)) from None
        return self._gen

    def make(self, prompt: Any, temperature: Any = 0.8, width: Any = 100, seed: int | None = None) -> MadeLevel:
        text, t, w = self.validate(prompt, temperature, width)
        from smbwm.levels.generate import SampleConfig
        with self._lock:
            level = self.generator().generate([text], SampleConfig(columns=w, temperature=t, top_k=self.cfg.top_k),
                                              seed=seed)[0]
        return MadeLevel(level, text, t, w)
