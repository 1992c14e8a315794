"""MarioGPT's text prompt: "<no|little|some|many> pipes, <..> enemies, <..> blocks, <low|high> elevation".

Counts and thresholds follow mario_gpt/prompter.py (Prompter): pipes = occurrences of "<>",
enemies = E + B (cannons count as enemies), blocks = X + S + ? + Q, each bucketed with
np.digitize(count, thresholds, right=True); the thresholds are the 33/66/95 % quantiles MarioGPT
measured on its 50-column (700-token) training windows. Elevation is high when any of the top 6
rows holds ground or a pipe top.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from smbwm.levels.level import Level

THRESHOLDS = {"pipes": (0.0, 2.0, 5.0), "enemies": (1.0, 3.0, 7.0), "blocks": (50.0, 75.0, 176.0)}
KEYWORDS = {"pipes": ("no", "little", "some", "many"), "enemies": ("no", "little", "some", "many"),
            "blocks": ("little", "little", "some", "many"), "elevation": ("low", "high")}
ORDER = ("pipes", "enemies", "blocks", "elevation")
WINDOW = 50  # columns per window the thresholds were measured on


class PromptError(ValueError):
    """A prompt the generator does not understand (one-line message)."""


@dataclass(frozen=True)
class Prompt:
    pipes: str
    enemies: str
    blocks: str
    elevation: str

    def __str__(self) -> str:
        return f"{self.pipes} pipes, {self.enemies} enemies, {self.blocks} blocks, {self.elevation} elevation"

    def values(self) -> tuple[str, str, str, str]:
        return (self.pipes, self.enemies, self.blocks, self.elevation)


def counts(level: Level) -> dict[str, int]:
    # Counted per row: Prompter counts "<>" in the rows joined together, which could also pair
    # a row's last '<' with the next row's first '>' - never a real pipe.
    return {
        "pipes": sum(r.count("<>") for r in level.rows),
        "enemies": sum(r.count("E") + r.count("B") for r in level.rows),
        "blocks": sum(r.count(c) for r in level.rows for c in "XS?Q"),
    }


def _bucket(kind: str, count: int) -> str:
    return KEYWORDS[kind][int(np.digitize(count, THRESHOLDS[kind], right=True))]


def prompt_of(level: Level) -> Prompt:
    """The prompt MarioGPT's Prompter gives this window."""
    c = counts(level)
    high = any(ch in "X<>" for r in level.rows[:6] for ch in r)
    return Prompt(_bucket("pipes", c["pipes"]), _bucket("enemies", c["enemies"]),
                  _bucket("blocks", c["blocks"]), "high" if high else "low")


_PART = re.compile(r"^\s*(\w+)\s+(pipes?|enem(?:y|ies)|blocks?|elevation)\s*$", re.IGNORECASE)
_KIND = {"pipe": "pipes", "pipes": "pipes", "enemy": "enemies", "enemies": "enemies",
         "block": "blocks", "blocks": "blocks", "elevation": "elevation"}
DEFAULTS = {"pipes": "some", "enemies": "some", "blocks": "some", "elevation": "low"}


def _short(text: str, limit: int = 80) -> str:
    """A bad prompt quoted in an error: its start only (a 96 KB prompt must not fill the terminal)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def parse_prompt(text: str) -> Prompt:
    """Parse a prompt; parts may come in any order and omitted parts take DEFAULTS."""
    found: dict[str, str] = {}
    for part in [p for p in text.split(",") if p.strip()]:
        m = _PART.match(part)
        if not m:
            raise PromptError(f"cannot read {_short(part.strip())!r} in prompt {_short(text)!r}; expected e.g. "
                              f"'many pipes, some enemies, little blocks, low elevation'")
        word, kind = m.group(1).lower(), _KIND[m.group(2).lower()]
        if kind in found:
            raise PromptError(f"prompt {_short(text)!r} gives {kind} twice")
        if word not in KEYWORDS[kind]:
            allowed = "|".join(dict.fromkeys(KEYWORDS[kind]))
            raise PromptError(f"{word!r} is not a {kind} amount; use one of {allowed}")
        found[kind] = word
    if not found:
        raise PromptError("empty prompt; expected e.g. 'many pipes, some enemies, little blocks, low elevation'")
    return Prompt(**{k: found.get(k, DEFAULTS[k]) for k in ORDER})
