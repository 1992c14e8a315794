"""The game over a WebSocket: a bounded number of games at once (the CPU is the limit), a short queue
behind them, then "busy"; the player's keys in, JPEG frames and a status line out, at game speed.

Client -> server (JSON text, at most `max_message_bytes`):
    {"t": "start", "world": ..., "spawn": ..., "sampler": ..., "level": <id>, "agent": ...}
    {"t": "keys", "held": [key names], "pressed": [key names]}   pygame key names, as in game/keymap.py
    {"t": "control", "name": "reset" | "switch" | "pause" | "step"}
    {"t": "alive"}                                               the viewer is there (watching an agent)
Server -> client: {"t": "queued", "position": n}, {"t": "busy", ...}, {"t": "loading"},
    {"t": "started", "token": ..., "sides": [...]}, binary frames (one byte: side index, then a JPEG),
    {"t": "step", ...} after each frame, {"t": "error", "message": one line}, {"t": "idle"}.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from smbwm.game.keymap import DEFAULT_BUTTON_KEYS, DEFAULT_CONTROL_KEYS, KeyMap
from smbwm.serving.catalog import (SAMPLERS, WORLDS, LevelStore, ServeError, agent_by_name, check_choice, spawn_by_id)
from smbwm import actions as A
from smbwm.serving.games import GameConfig, GameSpec, LiveGame, Played
from smbwm.utils.paths import DEFAULT_SAMPLER

KEY_NAMES = sorted({n for names in (*DEFAULT_BUTTON_KEYS.values(), *DEFAULT_CONTROL_KEYS.values()) for n in names})
KEYS = KeyMap().resolve(lambda name: KEY_NAMES.index(name))
CONTROLS = ("reset", "switch", "pause", "step")
AGENT_WORLD = {"dream": "dream", "level_dream": "dream", "real": "real", "compare": "real", "level": "level"}


class GameSlots:
    """At most `max_games` games; up to `max_waiting` more wait in line (first come, first served)."""

    def __init__(self, max_games: int, max_waiting: int, tell_every_s: float = 2.0):
        self.max_games, self.max_waiting = max_games, max_waiting
        self.tell_every_s = tell_every_s      # how often a waiting player hears its place in line
        self.active = 0
        self.waiting: list[asyncio.Future] = []

    async def acquire(self, on_position: Callable[[int], Awaitable[None]]) -> bool:
        """True once a slot is ours; False at once if the line is full too."""
        if self.active < self.max_games and not self.waiting:
            self.active += 1
            return True
        if len(self.waiting) >= self.max_waiting:
            return False
        fut = asyncio.get_running_loop().create_future()
        self.waiting.append(fut)
        try:
            # release() may hand the slot over at any await, even while a wait times out: look before asking
            # for the place in line, which the future no longer has once it is handed a slot
            while not fut.done():
                await on_position(self.waiting.index(fut) + 1)
                try:
                    await asyncio.wait_for(asyncio.shield(fut), timeout=self.tell_every_s)
                except asyncio.TimeoutError:
                    pass
            return True
        except BaseException:
            if fut in self.waiting:
                self.waiting.remove(fut)
            elif fut.done():          # handed a slot while leaving: pass it on
                self.release()
            raise

    def release(self) -> None:
        if self.waiting:
            self.waiting.pop(0).set_result(True)     # the slot goes straight to the next in line
        else:
            self.active -= 1


@dataclass
class Controls:
    """What the page asked for since the last step."""
    held: int = 0                    # NES byte of the keys held now
    latched: int = 0                 # buttons pressed since the last step (a quick tap is never lost)
    paused: bool = False
    step_once: bool = False
    pending_reset: int | None = None
    last_input: float = field(default_factory=time.monotonic)

    def keys(self, held: Any, pressed: Any) -> None:
        names = set(_names(held))
        self.held = KEYS.byte_from_held(lambda code: KEY_NAMES[code] in names)
        for n in _names(pressed):
            self.latched |= KEYS.bit_for_key(KEY_NAMES.index(n))

    def control(self, name: str) -> None:
        if name == "reset":
            self.pending_reset = 0
        elif name == "switch":
            self.pending_reset = 1
        elif name == "pause":
            self.paused = not self.paused
        elif name == "step" and self.paused:
            self.step_once = True

    def take_byte(self) -> int:
        byte, self.latched, self.step_once = self.held | self.latched, 0, False
        return byte


def _names(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ServeError("held/pressed must be lists of key names")
    return [n for n in value if isinstance(n, str) and n in KEY_NAMES]


def parse_start(msg: dict, levels: LevelStore) -> GameSpec:
    """A game request from the page, every field checked against the server's lists."""
    world = check_choice("world", msg.get("world", "dream"), WORLDS)
    agent = msg.get("agent") or None
    if agent is not None:
        agent = agent_by_name(agent, AGENT_WORLD[world]).name
    spec = GameSpec(world=world, sampler=check_choice("sampler", msg.get("sampler", DEFAULT_SAMPLER), SAMPLERS), agent=agent)
    if world.startswith("level"):
        spec.level = levels.get(msg.get("level"))
    else:
        spec.spawn = spawn_by_id(msg.get("spawn", 0))
    return spec


class GameConnection:
    """One page's game: runs on the server's event loop, steps in a worker thread."""

    def __init__(self, ws, app):
        self.ws, self.app = ws, app
        self.controls = Controls()
        self.game: LiveGame | None = None
        self.closed = False
        self.times: deque[float] = deque(maxlen=32)

    async def send(self, **msg: Any) -> None:
        await self.ws.send_text(json.dumps(msg))

    async def receive(self) -> dict | None:
        """The next JSON message, or None when the page went away; too big or not JSON is an error."""
        from starlette.websockets import WebSocketDisconnect
        try:
            text = await self.ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return None
        if len(text.encode()) > self.app.cfg.max_message_bytes:
            raise ServeError(f"message of {len(text.encode())} bytes; at most {self.app.cfg.max_message_bytes}")
        try:
            msg = json.loads(text)
        except ValueError:
            raise ServeError("messages must be JSON objects") from None
        if not isinstance(msg, dict):
            raise ServeError("messages must be JSON objects")
        self.controls.last_input = time.monotonic()
        return msg

    async def wait_for_start(self) -> GameSpec | None:
        while True:
            try:
                msg = await asyncio.wait_for(self.receive(), timeout=self.app.cfg.idle_timeout_s)
            except asyncio.TimeoutError:
                await self.send(t="idle", message="closed after no request")
                return None
            except ServeError as e:
                await self.send(t="error", message=str(e))
                continue
            if msg is None:
                return None
            if msg.get("t") != "start":
                continue
            try:
                return parse_start(msg, self.app.levels)
            except ServeError as e:
                await self.send(t="error", message=str(e))

    async def run(self) -> None:
        spec = await self.wait_for_start()
        if spec is None:
            return
        slots = self.app.slots
        if not await slots.acquire(lambda n: self.send(t="queued", position=n, games=slots.max_games)):
            await self.send(t="busy", games=slots.max_games, waiting=len(slots.waiting),
                            message=f"all {slots.max_games} game slots and the {slots.max_waiting} places in line "
                                    "are taken; try again in a minute")
            return
        try:
            await self.send(t="loading")
            cfg = GameConfig(fps=self.app.cfg.fps, dream_threads=self.app.cfg.threads)
            try:
                self.game = await asyncio.to_thread(LiveGame, spec, cfg, None, self.app.dream_builder)
            except (ValueError, OSError) as e:
                await self.send(t="error", message=f"cannot start the game: {str(e).splitlines()[0]}")
                return
            token = self.app.register(self.game)
            await self.send(t="started", token=token, sides=self.game.sides, world=spec.world, agent=spec.agent,
                            sampler=spec.sampler, fps=cfg.fps)
            reader = asyncio.create_task(self.read_loop())
            try:
                await self.play_loop()
            finally:
                reader.cancel()
        finally:
            slots.release()
            if self.game is not None:
                await asyncio.to_thread(self.game.close)
                self.app.finished(self.game)

    async def read_loop(self) -> None:
        c = self.controls
        while True:
            try:
                msg = await self.receive()
            except ServeError as e:
                await self.send(t="error", message=str(e))
                continue
            if msg is None:
                self.closed = True
                return
            try:
                if msg.get("t") == "keys":
                    c.keys(msg.get("held", []), msg.get("pressed", []))
                elif msg.get("t") == "control":
                    c.control(check_choice("control", msg.get("name"), CONTROLS))
            except ServeError as e:
                await self.send(t="error", message=str(e))

    async def play_loop(self) -> None:
        c, game, period = self.controls, self.game, 1.0 / self.app.cfg.fps
        await self.show(await asyncio.to_thread(game.reset, 0))
        due = time.monotonic()
        while not self.closed:
            if time.monotonic() - c.last_input > self.app.cfg.idle_timeout_s:
                await self.send(t="idle", message=f"stopped after {self.app.cfg.idle_timeout_s:g} s without input")
                return
            if c.pending_reset is not None:
                advance, c.pending_reset = c.pending_reset, None
                await self.show(await asyncio.to_thread(game.reset, advance))
                self.times.clear()
                due = time.monotonic()
                continue
            if c.paused and not c.step_once:
                await asyncio.sleep(0.03)
                due = time.monotonic()
                continue
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            due = max(due + period, time.monotonic() - period)     # late frames are not caught up in a burst
            try:
                played = await asyncio.to_thread(game.step, c.take_byte())
            except Exception as e:  # noqa: BLE001 - an agent's server down, an env error: one line, game over
                await self.send(t="error", message=f"the game stopped: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                return
            self.times.append(time.monotonic())
            await self.show(played)
            if played.shown.ended:
                c.pending_reset = 0

    def fps(self) -> float:
        t = self.times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    async def show(self, p: Played) -> None:
        for i, side in enumerate(self.game.sides):
            if side in p.jpegs:
                await self.ws.send_bytes(bytes([i]) + p.jpegs[side])
        await self.send(t="step", step=p.shown.step, fps=round(self.fps(), 1), action=A.name(p.action),
                        buttons=p.action, ended=p.shown.ended, agent_text=p.agent_text, info=p.info,
                        note=p.shown.note, paused=self.controls.paused,
                        step_ms=round(max((v for k, v in p.shown.timings_ms.items() if "/" not in k), default=0.0), 1))
