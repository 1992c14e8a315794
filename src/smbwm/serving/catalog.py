"""What a web page or an MCP client may choose, by id, from server-side lists: spawns, samplers,
agents, generated levels. Nothing a client sends is ever used as a path.

Every bad choice or number raises `ServeError` with one line that says what is allowed.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from threading import Lock
from typing import Any

from smbwm.data.spawn import list_spawns
from smbwm.levels.level import Level
from smbwm.utils.paths import CONFIG_DIR, REPO_ROOT as ROOT, SPAWNS as SPAWN_DIR, sampler_presets

AGENT_CONFIGS = CONFIG_DIR / "agent"
SAMPLERS = sampler_presets()
WORLDS = ("dream", "real", "compare", "level", "level_dream")


class ServeError(ValueError):
    """A client's bad choice or number; str() is one line saying what is allowed."""


def check_number(name: str, value: Any, lo: float, hi: float, integer: bool = False) -> float | int:
    """`value` as a number in [lo, hi] (an int if `integer`), else ServeError."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and isinstance(value, float)
                                                                          and not value.is_integer()):
        raise ServeError(f"{name} must be {kind} in {lo:g}..{hi:g}, got {value!r}")
    if not lo <= value <= hi:
        raise ServeError(f"{name} must be in {lo:g}..{hi:g}, got {value:g}")
    return int(value) if integer else float(value)


def check_choice(name: str, value: Any, allowed: list[str] | tuple[str, ...]) -> str:
    if value not in allowed:
        raise ServeError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, allowed))}")
    return str(value)


# --- spawns --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpawnChoice:
    id: str          # the folder name, e.g. "01_world_1-1"
    level: str
    path: Path       # server-side only, never sent to a client

    def public(self) -> dict[str, str]:
        return {"id": self.id, "level": self.level}


def spawns(spawn_dir: Path = SPAWN_DIR) -> list[SpawnChoice]:
    out = []
    for p in list_spawns(spawn_dir):
        try:
            level = str(json.loads((p / "meta.json").read_text()).get("level", ""))
        except (OSError, ValueError):
            level = ""
        out.append(SpawnChoice(p.name, level, p))
    return out


def spawn_by_id(spawn_id: Any, spawn_dir: Path = SPAWN_DIR) -> SpawnChoice:
    """A spawn by folder name or by its index in the list (an int or a digit string)."""
    known = spawns(spawn_dir)
    if not known:
        raise ServeError(f"the server has no spawns in {spawn_dir.name}/ (make some with `python src/dataset.py spawn`)")
    if isinstance(spawn_id, int) or (isinstance(spawn_id, str) and spawn_id.isdigit()):
        i = int(spawn_id)
        if not 0 <= i < len(known):
            raise ServeError(f"spawn index {i} is out of range 0..{len(known) - 1}")
        return known[i]
    for s in known:
        if s.id == spawn_id:
            return s
    raise ServeError(f"unknown spawn {spawn_id!r}; choose one of {', '.join(s.id for s in known)} (or an index)")


# --- agents --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentChoice:
    name: str                  # config/agent/<name>.yaml
    label: str
    reads_state: bool          # needs the game state (emulator RAM or the level simulator), not only pixels
    worlds: tuple[str, ...] = ("real", "dream", "level")


AGENTS = {a.name: a for a in (
    AgentChoice("modular_mind", "Modular Mind (trained policy)", True),
    AgentChoice("scripted", "scripted runner", True, ("real", "dream")),
    AgentChoice("random", "random (held actions)", False),
    AgentChoice("balanced", "NOOP-balanced random", False),
    AgentChoice("expert", "A* expert (levels only)", True, ("level",)),
    AgentChoice("vlm", "VLM (OpenAI-compatible endpoint)", False),
)}


def vlm_configured() -> bool:
    """The VLM agent is offered only when an endpoint is configured ($OPENAI_BASE_URL)."""
    return bool(os.environ.get("OPENAI_BASE_URL"))


def agent_names(world: str | None = None) -> list[str]:
    return [a.name for a in AGENTS.values()
            if (world is None or world in a.worlds) and (a.name != "vlm" or vlm_configured())]


def agent_by_name(name: Any, world: str) -> AgentChoice:
    allowed = agent_names(world)
    if name == "vlm" and not vlm_configured() and "vlm" in AGENTS:
        raise ServeError("the VLM agent needs an OpenAI-compatible endpoint: start the server with OPENAI_BASE_URL set")
    return AGENTS[check_choice(f"agent for {world}", name, allowed)]


def make_agent(name: str, seed: int = 0) -> Any:
    """The agent as `python src/collect.py agent=<name>` builds it (its config/agent yaml)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf
    cfg = OmegaConf.to_container(OmegaConf.load(AGENT_CONFIGS / f"{name}.yaml"))
    weights = cfg.get("weights")
    if isinstance(weights, str) and not Path(weights).is_absolute():
        cfg["weights"] = str(ROOT / weights)      # the yaml's paths are relative to the repo, not to the cwd
    return instantiate(cfg, seed=seed)


# --- generated levels ----------------------------------------------------------------------------
class LevelStore:
    """The levels generated in this server, by id (`gpt:<sha12>`), oldest dropped beyond `capacity`."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self._levels: OrderedDict[str, Level] = OrderedDict()
        self._lock = Lock()

    def put(self, level: Level) -> str:
        from smbwm.envs.level_env import level_id
        lid = level_id(level.text())
        with self._lock:
            self._levels[lid] = level
            self._levels.move_to_end(lid)
            while len(self._levels) > self.capacity:
                self._levels.popitem(last=False)
        return lid

    def get(self, lid: Any) -> Level:
        with self._lock:
            level = self._levels.get(lid) if isinstance(lid, str) else None
        if level is None:
            raise ServeError(f"unknown level id {lid!r}: generate a level first (ids look like gpt:0123456789ab)")
        return level

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._levels)
