"""What the VLM agent sends and how it reads the answer: the default prompt, frames as PNG image
parts labelled with their age, the legal actions as `id:name` pairs, and a forgiving reply parser.
"""
from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from smbwm import actions as A

STEPS_PER_SECOND = 15  # frame-skip 4 at 60 NES frames/s (docs/data.md, "Time")

DEFAULT_SYSTEM_PROMPT = """\
You are playing Super Mario Bros (NES) as a skilled human player would. You see recent game \
screenshots, oldest first; the last one is the screen right now. Mario is the small red-and-brown \
character. The goal is to move right, reach the flagpole at the end of the level and stay alive.
Tips: hold right to advance; add B to run; A jumps (a jump held longer goes higher). Jump over \
pits, pipes, walls and enemies (Goombas are brown mushrooms, Koopas are green turtles), or stomp \
enemies by landing on top of them. Mario dies touching an enemy from the side or falling into a pit. \
Hit ?-blocks from below for coins and power-ups.
Each answer picks the buttons held for the next moment of play. Reply with ONE integer: the id of \
one legal action. You may think briefly first, but end your reply with the id."""


@dataclass
class PromptConfig:
    """How frames are shown: `upscale` is a nearest-neighbour factor (some models see tiny 256x240
    sprites better at 2x); `detail` is the OpenAI image `detail` hint (null: not sent)."""

    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    upscale: int = 1
    detail: str | None = None


def png_data_url(frame: np.ndarray, upscale: int = 1) -> str:
    """RGB uint8 (H, W, 3) -> 'data:image/png;base64,...', optionally upscaled (nearest neighbour)."""
    img = Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8), "RGB")
    if upscale > 1:
        img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)  # fast: the bytes only travel once
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def action_list(action_bytes: Sequence[int]) -> str:
    """'0:NOOP, 1:right, 2:right+A, ...' - ids are positions in the agent's action set."""
    return ", ".join(f"{i}:{A.name(b)}" for i, b in enumerate(action_bytes))


def age_label(age_steps: int) -> str:
    if age_steps == 0:
        return "Frame now (the current screen):"
    return f"Frame {age_steps} steps ago ({age_steps / STEPS_PER_SECOND:.2f} s ago):"


def build_messages(cfg: PromptConfig, images: Sequence[str], ages: Sequence[int],
                   action_bytes: Sequence[int], hold: int) -> list[dict[str, Any]]:
    """Chat-completions messages: system prompt, then one user turn with every frame (PNG data URLs
    from png_data_url, oldest first, each preceded by its age) and the question."""
    content: list[dict[str, Any]] = []
    for url, age in zip(images, ages):
        content.append({"type": "text", "text": age_label(age)})
        image: dict[str, Any] = {"url": url}
        if cfg.detail:
            image["detail"] = cfg.detail
        content.append({"type": "image_url", "image_url": image})
    secs = hold / STEPS_PER_SECOND
    content.append({"type": "text", "text": (
        f"Legal actions (id:name): {action_list(action_bytes)}.\n"
        f"The chosen buttons are held for {hold} step{'s' if hold != 1 else ''} ({secs:.2f} s). "
        f"Which action now? Answer with one integer id from 0 to {len(action_bytes) - 1}.")})
    return [{"role": "system", "content": cfg.system_prompt}, {"role": "user", "content": content}]


# Whole numbers only: not part of a decimal ("0.5 s"), a word ("x2") or a longer number.
_INT = re.compile(r"(?<![\w.])\d+(?![\w]|\.\d)")
_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)


def parse_action(text: str | None, action_bytes: Sequence[int]) -> int | None:
    """Index of the chosen action, or None when the reply names no legal action.

    Models think aloud, so the LAST legal integer wins ("1 would walk, but 2 jumps: 2" -> 2);
    <think> blocks are ignored; a reply that is exactly an action name ("right+A") also counts.
    """
    if not text:
        return None
    body = _THINK.sub(" ", text)
    for m in reversed(list(_INT.finditer(body))):
        i = int(m.group())
        if i < len(action_bytes):
            return i
    by_name = {A.name(b).lower(): i for i, b in enumerate(action_bytes)}
    return by_name.get(body.strip().strip(".`'\"*").lower())
