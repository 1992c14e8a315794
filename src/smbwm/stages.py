"""Stage names of the NES game: "1-1" … "8-4", and the specs that expand to lists of them
("world1", "all", "[1-1,2-1]", "random"). Used wherever a user names a stage (collect, play, splits,
imports); the ASCII MarioGPT levels are another idea with their own parser (`levels.level.parse_level`)."""
from __future__ import annotations

import re
from typing import Sequence

ALL_STAGES = [f"{w}-{s}" for w in range(1, 9) for s in range(1, 5)]


def parse_stage(name: str) -> tuple[int, int]:
    """'1-1' -> (1, 1); raises ValueError with the accepted forms otherwise."""
    m = re.fullmatch(r"\s*([1-8])-([1-4])\s*", str(name))
    if not m:
        raise ValueError(f"bad level {name!r}: expected WORLD-STAGE with world 1..8 and stage 1..4, e.g. 1-1")
    return int(m.group(1)), int(m.group(2))


def stage_name(name: str) -> str:
    """' 1-1 ' -> '1-1' (validated)."""
    return "%d-%d" % parse_stage(name)


def expand_stages(spec: str | Sequence[str] | None) -> list[str]:
    """'1-1' | ['1-1','2-1'] | 'all' | 'world1' | 'random' | None -> list of 'W-S' (None/'random' -> [])."""
    if spec is None:
        return []
    if isinstance(spec, str):
        s = spec.strip().lower()
        if s in ("random", ""):
            return []
        if s == "all":
            return list(ALL_STAGES)
        m = re.fullmatch(r"world([1-8])", s)
        if m:
            return [f"{m.group(1)}-{k}" for k in range(1, 5)]
        spec = [p for p in re.split(r"[,\s]+", s) if p]
    out = []
    for st in spec:
        out.extend(expand_stages(st) if str(st).lower().startswith(("world", "all")) else [stage_name(st)])
    return out
