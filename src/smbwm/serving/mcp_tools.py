"""The MCP server's tools (official `mcp` SDK v2, `MCPServer`): make levels, list spawns, dream a
rollout, play a level, read the model card. Arguments are typed and range-checked in the schema;
a bad one comes back as one error line. The models load on first use, once per process.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
import anyio.to_thread
import numpy as np
from mcp.server.mcpserver import Context, Image, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import TextContent
from pydantic import Field, ValidationError

from smbwm import actions as A
from smbwm.serving.catalog import SAMPLERS, LevelStore, ServeError, agent_by_name, spawn_by_id, spawns
from smbwm.serving.games import GameSpec
from smbwm.serving.level_maker import LevelMaker, LevelMakerConfig, suggestions
from smbwm.serving.rollouts import Rollouts, level_outcome, model_card, playability
from smbwm.utils.paths import DEFAULT_SAMPLER

RIGHT_RUN = A.to_byte(["right", "B"])
PROGRESS_EVERY = 5          # steps between progress notifications
Content = list[TextContent | Image]
DreamAgent = Literal["modular_mind", "scripted", "random", "balanced", "vlm"]
LevelAgent = Literal["modular_mind", "random", "balanced", "expert", "vlm"]
MC = LevelMakerConfig()     # the generator's limits, in the tool schema (annotations are read at module level)


class SMBServer(MCPServer):
    async def call_tool(self, name: str, arguments: dict[str, Any], context: Context | None = None):
        """Argument validation errors as one line ("tool: field: what is wrong") instead of pydantic's report."""
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as e:
            cause = e.__cause__
            if isinstance(cause, ValidationError) and cause.errors():
                err = cause.errors()[0]
                where = ".".join(str(p) for p in err["loc"]) or "arguments"
                raise ToolError(f"{name}: {where}: {err['msg']}") from None
            raise


def _text(obj: Any) -> TextContent:
    return TextContent(type="text", text=obj if isinstance(obj, str) else json.dumps(obj, indent=1))


def build_server(rollouts: Rollouts | None = None, maker: LevelMaker | None = None,
                 levels: LevelStore | None = None) -> SMBServer:
    rollouts, maker, levels = rollouts or Rollouts(), maker or LevelMaker(MC), levels or LevelStore()
    server = SMBServer("smb-world-model", log_level="WARNING", instructions=(
        "A diffusion world model of Super Mario Bros (the dream) and a MarioGPT-style level generator. "
        "generate_level makes a level from a prompt (level_suggestions lists the prompt words); play_level "
        "has an agent play it; list_spawns and dream roll the world model out from a real start."))

    async def run_rollout(ctx: Context, spec: GameSpec, steps: int, actions: list[int] | None, gif_scale: float):
        def on_step(t: int) -> None:
            if t % PROGRESS_EVERY == 0 or t == steps:
                anyio.from_thread.run(ctx.report_progress, t, steps, f"step {t}/{steps}")

        def run():
            rollouts.gif_scale = gif_scale
            return rollouts.run(spec, steps, actions, on_step)
        try:
            return await anyio.to_thread.run_sync(run)
        except ServeError as e:
            raise ToolError(str(e)) from None
        except ValueError as e:
            raise ToolError(str(e).splitlines()[0]) from None

    @server.tool()
    async def generate_level(
            prompt: Annotated[str, Field(description="e.g. 'many pipes, some enemies, little blocks, low elevation'",
                                         max_length=MC.max_prompt_chars)],
            temperature: Annotated[float, Field(ge=MC.min_temperature, le=MC.max_temperature)] = 0.8,
            width: Annotated[int, Field(ge=MC.min_width, le=MC.max_width, description="columns, 16 px each")] = 100,
            seed: int | None = None) -> Content:
        """Generate a Super Mario Bros level from a text prompt: its 14 rows of ASCII tiles (with an id for
        play_level) and a PNG of the whole level."""
        try:
            made = await anyio.to_thread.run_sync(lambda: maker.make(prompt, temperature, width, seed))
        except ServeError as e:
            raise ToolError(str(e)) from None
        lid = levels.put(made.level)
        head = f"level_id {lid}: '{made.prompt}', temperature {made.temperature:g}, {made.width} columns\n"
        return [_text(head + made.level.text()), Image(data=await anyio.to_thread.run_sync(made.png), format="png")]

    @server.tool()
    def level_suggestions() -> dict[str, Any]:
        """The words a level prompt is made of (amounts of pipes, enemies, blocks; elevation) and example prompts."""
        return suggestions()

    @server.tool()
    def list_spawns() -> list[dict[str, str]]:
        """The starting points the dream can start from: id (folder name) and NES level."""
        return [s.public() for s in spawns()]

    @server.tool()
    async def dream(
            ctx: Context,
            spawn: Annotated[str, Field(description="a spawn id from list_spawns, or its index")] = "0",
            actions: Annotated[list[Annotated[int, Field(ge=0, le=255)]] | None,
                               Field(description="NES button bytes, cycled (128 right, 130 right+B, 131 right+B+A); "
                                                 "default: right+B held", max_length=1000)] = None,
            agent: Annotated[DreamAgent | None, Field(description="an agent instead of actions")] = None,
            steps: Annotated[int, Field(ge=1, le=150)] = 30,
            sampler: Literal[SAMPLERS] = DEFAULT_SAMPLER,  # type: ignore[valid-type] - the preset files' names
            image: Literal["gif", "strip"] = "gif") -> Content:
        """Roll the world model out from a spawn: a GIF (or PNG strip) of the dream and its playability figures
        (camera travel in px, share of frames showing Mario). Agents that read the game state play the real
        game beside the dream, which gets the same buttons."""
        if actions is not None and agent is not None:
            raise ToolError("dream: give actions or agent, not both")
        try:
            spec = GameSpec("dream", spawn_by_id(spawn), sampler, agent=agent_by_name(agent, "dream").name if agent else None)
        except ServeError as e:
            raise ToolError(str(e)) from None
        r = await run_rollout(ctx, spec, steps, None if agent else (actions or [RIGHT_RUN]), 1.0)
        frames = np.stack(r.frames["dream"])
        figures = {**_jsonable(playability(frames)), "spawn": spec.spawn.id, "steps": len(r.actions),
                   "sampler": sampler, "driven_by": agent or "actions"}
        if "real" in r.frames:
            figures["real_game_camera_travel_px"] = _jsonable(playability(np.stack(r.frames["real"])))["camera_travel_px"]
        if r.agent_texts:
            figures["agent_replies"] = r.agent_texts[-5:]
        picture = Image(data=r.gif(), format="gif") if image == "gif" else Image(data=r.strip(), format="png")
        r.cleanup()
        return [picture, _text(figures)]

    @server.tool()
    async def play_level(
            ctx: Context,
            level_text: Annotated[str | None, Field(description="14 rows of MarioGPT tiles", max_length=14 * 1001)] = None,
            level_id: Annotated[str | None, Field(description="an id from generate_level (gpt:...)")] = None,
            agent: LevelAgent = "expert",
            steps: Annotated[int, Field(ge=1, le=3000)] = 600) -> Content:
        """An agent plays a MarioGPT level in the level simulator: the outcome (x reached, flag, death) and a GIF."""
        from smbwm.levels.level import LevelError, parse_level
        if (level_text is None) == (level_id is None):
            raise ToolError("play_level: give exactly one of level_text and level_id")
        try:
            level = levels.get(level_id) if level_id is not None else parse_level(level_text, "level_text")
            name = agent_by_name(agent, "level").name
        except (ServeError, LevelError) as e:
            raise ToolError(str(e)) from None
        r = await run_rollout(ctx, GameSpec("level", level=level, agent=name), steps, None, 0.5)
        outcome = {"agent": name, **level_outcome(r, level.width * 16)}
        if r.agent_texts:
            outcome["agent_replies"] = r.agent_texts[-5:]
        gif = Image(data=r.gif(), format="gif")
        r.cleanup()
        return [_text(outcome), gif]

    server.add_tool(model_card, name="model_card",
                    description="The shipped world model's card: what it is, its fidelity figures, where it stands.")
    return server


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in d.items()}
