"""The web app (Starlette on uvicorn): one page to play the dream, make a level, watch an agent.

Routes: `/` the page, `/static/*`, `/api/options` (every server-side choice), `POST /api/level`
(generate), `/api/level/<sha12>.png`, `/api/games/<token>/episode.hdf5` and `.../last_minute.gif`
(downloads of a game playing now or among the last finished), `/ws/game` (the game, web_game.py).
"""
from __future__ import annotations

import asyncio
import json
import secrets
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from smbwm.game.keymap import DEFAULT_BUTTON_KEYS, DEFAULT_CONTROL_KEYS
from smbwm.serving.catalog import (AGENTS, SAMPLERS, LevelStore, ServeError, agent_names, spawns)
from smbwm.serving.games import LiveGame
from smbwm.serving.level_maker import LevelMaker, suggestions
from smbwm.serving.web_game import GameConnection, GameSlots

STATIC = Path(__file__).resolve().parent / "static"


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"          # loopback unless --host says otherwise
    port: int = 8000
    max_games: int = 2               # games stepping at once: each dream takes most of a core at 15 steps/s
    max_waiting: int = 4             # players waiting in line beyond that; the next one gets "busy"
    idle_timeout_s: float = 300.0    # a game without a key (or, watching, a sign of the viewer) ends
    max_message_bytes: int = 4096    # WebSocket messages and POST bodies from a client
    fps: float = 15.0                # game steps per second
    keep_finished: int = 8           # finished games whose downloads stay available (oldest deleted)
    threads: int | None = None       # torch threads for the dream (process-wide; None: torch's default, all cores)
    max_level_requests: int = 3      # level generations running or waiting (one runs at a time); more get 429


class WebApp:
    def __init__(self, cfg: ServeConfig | None = None, dream_builder: Callable | None = None,
                 level_maker: LevelMaker | None = None):
        self.cfg = cfg or ServeConfig()
        self.dream_builder = dream_builder
        self.slots = GameSlots(self.cfg.max_games, self.cfg.max_waiting)
        self.levels = LevelStore()
        self.maker = level_maker or LevelMaker()
        self.games: OrderedDict[str, LiveGame] = OrderedDict()    # playing now and the last finished ones
        self._finished: list[str] = []
        self._level_requests = 0

    # --- games -----------------------------------------------------------------------------------
    def register(self, game: LiveGame) -> str:
        token = secrets.token_urlsafe(12)
        self.games[token] = game
        return token

    def finished(self, game: LiveGame) -> None:
        token = next((t for t, g in self.games.items() if g is game), None)
        if token is None:
            game.cleanup()
            return
        self._finished.append(token)
        while len(self._finished) > self.cfg.keep_finished:
            self.games.pop(self._finished.pop(0)).cleanup()

    def _game(self, token: str) -> LiveGame:
        game = self.games.get(token)
        if game is None:
            raise ServeError("no such game (downloads stay available for the last few finished games)")
        return game

    # --- routes ----------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        return {"spawns": [s.public() for s in spawns()], "samplers": list(SAMPLERS),
                "agents": {w: agent_names(w) for w in ("real", "dream", "level")},
                "agent_labels": {a.name: a.label for a in AGENTS.values()},
                "buttons": DEFAULT_BUTTON_KEYS, "controls": DEFAULT_CONTROL_KEYS,
                "levels": suggestions(), "level_limits": asdict(self.maker.cfg),
                "limits": {k: v for k, v in asdict(self.cfg).items() if k not in ("host", "port")}}

    def build(self):
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import FileResponse, JSONResponse, Response
        from starlette.routing import Mount, Route, WebSocketRoute
        from starlette.staticfiles import StaticFiles
        from starlette.websockets import WebSocket, WebSocketDisconnect

        def error(msg: str, status: int = 400) -> JSONResponse:
            return JSONResponse({"error": msg}, status_code=status)

        async def page(request: Request):
            return FileResponse(STATIC / "index.html")

        async def options(request: Request):
            return JSONResponse(self.options())

        async def make_level(request: Request):
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.cfg.max_message_bytes:
                    return error(f"request body over {self.cfg.max_message_bytes} bytes", 413)
            try:
                args = json.loads(body or b"{}")
                if not isinstance(args, dict):
                    raise ValueError
            except ValueError:
                return error("send a JSON object: {\"prompt\": ..., \"temperature\": ..., \"width\": ...}")
            if self._level_requests >= self.cfg.max_level_requests:
                return error("the level generator is busy; try again in a few seconds", 429)
            self._level_requests += 1
            try:
                made = await asyncio.to_thread(self.maker.make, args.get("prompt"), args.get("temperature", 0.8),
                                               args.get("width", 100))
            except ServeError as e:
                return error(str(e))
            finally:
                self._level_requests -= 1
            lid = self.levels.put(made.level)
            return JSONResponse({"id": lid, "prompt": made.prompt, "temperature": made.temperature,
                                 "width": made.width, "ascii": made.level.text(), "png": f"/api/level/{lid[4:]}.png"})

        async def level_png(request: Request):
            try:
                level = self.levels.get("gpt:" + request.path_params["sha"])
            except ServeError as e:
                return error(str(e), 404)
            from smbwm.serving.level_maker import MadeLevel
            png = await asyncio.to_thread(MadeLevel(level, "", 0.0, level.width).png)
            return Response(png, media_type="image/png")

        async def episode(request: Request):
            try:
                path = await asyncio.to_thread(self._game(request.path_params["token"]).episode_file)
            except ServeError as e:
                return error(str(e), 404)
            if path is None:
                return error("no episode recorded yet: play a step first", 404)
            return FileResponse(path, media_type="application/x-hdf5", filename=path.name)

        async def gif(request: Request):
            try:
                data = await asyncio.to_thread(self._game(request.path_params["token"]).gif)
            except (ServeError, ValueError) as e:
                return error(str(e), 404)
            return Response(data, media_type="image/gif",
                            headers={"Content-Disposition": 'attachment; filename="last_minute.gif"'})

        async def game_socket(ws: WebSocket):
            await ws.accept()
            try:
                await GameConnection(ws, self).run()
            except WebSocketDisconnect:
                pass              # the page went away mid-send: the game was closed and its slot freed
            finally:
                try:
                    await ws.close()
                except RuntimeError:
                    pass          # already closed by the page

        return Starlette(routes=[
            Route("/", page), Route("/api/options", options), Route("/api/level", make_level, methods=["POST"]),
            Route("/api/level/{sha:str}.png", level_png),
            Route("/api/games/{token:str}/episode.hdf5", episode), Route("/api/games/{token:str}/last_minute.gif", gif),
            WebSocketRoute("/ws/game", game_socket), Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ])
