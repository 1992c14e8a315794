"""The web app's game layer and server: real sessions on the shipped checkpoint, the real emulator and the
level simulator; a real uvicorn server on 127.0.0.1 spoken to over HTTP and WebSocket."""
from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from smbwm import actions as A
from smbwm.data.episode import read_episode
from smbwm.serving.catalog import LevelStore, ServeError, check_number, spawn_by_id, spawns
from smbwm.serving.games import GameSpec, LiveGame
from smbwm.serving.level_maker import LevelMaker
from smbwm.serving.web_game import Controls, GameSlots, parse_start
from chat_server import ChatServer, ChatServerConfig
from web_server import running_web_app

RIGHT = A.to_byte(["right"])


@pytest.fixture(scope="module")
def small_level():
    return LevelMaker().make("some pipes, no enemies", 0.8, 24, seed=0)


# --- choices and numbers -------------------------------------------------------------------------
def test_client_choices_are_ids_from_server_lists_with_one_line_errors(small_level):
    levels = LevelStore()
    lid = levels.put(small_level.level)
    assert parse_start({"world": "dream", "spawn": "01_world_1-1"}, levels).spawn.path.name == "01_world_1-1"
    assert parse_start({"world": "compare", "spawn": 1}, levels).spawn.id == spawns()[1].id
    assert parse_start({"world": "level", "level": lid, "agent": "expert"}, levels).level == small_level.level
    bad = [({"world": "dream", "spawn": "../../etc"}, "unknown spawn"),
           ({"world": "dream", "spawn": "/tmp"}, "unknown spawn"),
           ({"world": "dream", "spawn": 99}, "out of range"),
           ({"world": "moon"}, "unknown world"),
           ({"world": "dream", "sampler": "slow"}, "unknown sampler"),
           ({"world": "level", "level": "gpt:000000000000"}, "unknown level id"),
           ({"world": "dream", "agent": "expert"}, "unknown agent for dream"),
           ({"world": "real", "agent": "vlm"}, "OPENAI_BASE_URL")]
    for msg, words in bad:
        with pytest.raises(ServeError, match=words) as e:
            parse_start(msg, levels)
        assert "\n" not in str(e.value)
    for v in ("3", True, None, 2.5):
        with pytest.raises(ServeError):
            check_number("width", v, 1, 10, integer=True)
    assert check_number("temperature", 1, 0.1, 2.0) == 1.0


def test_key_names_make_the_player_s_button_byte():
    c = Controls()
    c.keys(["right", "x", "left shift", "not a key"], [])
    assert c.take_byte() == A.to_byte(["right", "B"])
    c.keys(["left", "right"], ["z"])                     # opposite directions cancel; a tapped jump is latched
    assert c.take_byte() == A.to_byte(["A"])
    assert c.take_byte() == 0
    c.control("pause")
    assert c.paused
    with pytest.raises(ServeError):
        c.keys("right", [])


def test_a_slot_handed_over_while_the_waiter_is_told_its_place_is_never_lost():
    """The waiter is told its place in line every `tell_every_s`; releases land at every moment of that cycle."""
    async def trial(delay: float) -> tuple[bool, int]:
        slots = GameSlots(1, 1, tell_every_s=0.0005)
        assert await slots.acquire(_told)
        waiter = asyncio.create_task(slots.acquire(_told))
        await asyncio.sleep(delay)
        slots.release()
        return await asyncio.wait_for(waiter, 5), slots.active

    async def _told(position: int) -> None:
        await asyncio.sleep(0)

    rng = np.random.default_rng(0)
    for delay in rng.uniform(0.0, 0.004, 300):
        assert asyncio.run(trial(float(delay))) == (True, 1)


# --- games ---------------------------------------------------------------------------------------
def test_dream_game_records_an_hdf5_episode_and_a_gif():
    game = LiveGame(GameSpec("dream", spawn_by_id(0)))
    try:
        first = game.reset()
        assert first.shown.images["dream"].shape == (240, 256, 3) and first.jpegs["dream"][:2] == b"\xff\xd8"
        for _ in range(4):
            played = game.step(RIGHT)
        assert played.action == RIGHT and played.shown.step == 4 and "camera_x" in played.info
        path = game.episode_file()
        ep = read_episode(path)
        assert len(ep) == 4 and ep.frames.shape == (5, 240, 256, 3) and ep.attrs["source"] == "dream/human"
        assert (ep.actions == RIGHT).all()
        game.step(0)                                     # recording goes on after a download
        gif = Image.open(io.BytesIO(game.gif()))
        assert gif.format == "GIF" and gif.n_frames == 6 and gif.size == (256, 240)
    finally:
        game.close()
        game.cleanup()


def test_agent_plays_a_generated_level_and_a_scripted_runner_plays_beside_the_dream(small_level):
    game = LiveGame(GameSpec("level", level=small_level.level, agent="modular_mind"))
    try:
        game.reset()
        xs = [game.step().info["x_pos"] for _ in range(20)]
        assert xs[-1] > xs[0]                            # the policy runs right
        ep = read_episode(game.episode_file())
        assert ep.attrs["source"] == "levels/modular_mind" and ep.level_text == small_level.level.text()
    finally:
        game.close()
    dream = LiveGame(GameSpec("level_dream", level=small_level.level))      # "dream it": the model from the level's start
    try:
        start = dream.reset().shown.images["dream"]
        assert dream.sides == ["dream"] and np.abs(start.astype(int) - _level_start(small_level.level)).mean() < 1
        assert dream.step(RIGHT).shown.images["dream"].shape == (240, 256, 3)
    finally:
        dream.close()
    compare = LiveGame(GameSpec("dream", spawn_by_id(0), agent="scripted"))
    try:
        assert compare.sides == ["dream", "real"]       # the runner reads the emulator's RAM
        compare.reset()
        p = compare.step()
        assert set(p.jpegs) == {"dream", "real"} and p.action & A.BUTTON_BITS["right"]
    finally:
        compare.close()


def _level_start(level) -> np.ndarray:
    from smbwm.envs.level_env import LevelEnv
    env = LevelEnv(level_text=level.text())
    frames = [env.reset(seed=0)[0]] + [env.step(0)[0] for _ in range(3)]
    env.close()
    return frames[-1].astype(int)


def test_vlm_agent_is_offered_with_an_endpoint_and_its_replies_stream(monkeypatch):
    with ChatServer(ChatServerConfig(default="3")) as srv:      # 3 = right+B in the simple set
        levels = LevelStore()
        with pytest.raises(ServeError, match="OPENAI_BASE_URL"):
            parse_start({"world": "real", "agent": "vlm"}, levels)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        spec = parse_start({"world": "real", "agent": "vlm", "spawn": 0}, levels)
        game = LiveGame(spec)
        try:
            game.reset()
            played = [game.step() for _ in range(3)]
        finally:
            game.close()
    assert [p.agent_text for p in played][0] == "3" and all(p.action == A.to_byte(["right", "B"]) for p in played)


# --- the server ----------------------------------------------------------------------------------
def _http(url: str, body: dict | bytes | None = None) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _until(ws, kind: str, limit: int = 400) -> dict:
    seen = []                               # the other messages on the way, to say what came instead
    for _ in range(limit):
        try:
            m = ws.recv(timeout=120)
        except ConnectionClosed as e:
            raise AssertionError(f"no {kind!r} message before the server closed ({e}); got {seen[-5:]}") from None
        if isinstance(m, str):
            if json.loads(m)["t"] == kind:
                return json.loads(m)
            seen.append(m[:200])
    raise AssertionError(f"no {kind!r} message; got {seen[-5:]}")


@pytest.fixture(scope="module")
def server():
    with running_web_app(max_games=1, max_waiting=1, idle_timeout_s=60) as url:
        yield url


def test_page_options_and_levels_over_http(server):
    status, page = _http(server + "/")
    assert status == 200 and b'id="screen"' in page
    opts = json.loads(_http(server + "/api/options")[1])
    assert [s["id"] for s in opts["spawns"]] == [s.id for s in spawns()] and "path" not in opts["spawns"][0]
    status, body = _http(server + "/api/level", {"prompt": "many pipes, no enemies", "temperature": 0.8, "width": 20})
    made = json.loads(body)
    assert status == 200 and made["id"].startswith("gpt:") and len(made["ascii"].splitlines()) == 14
    status, png = _http(server + made["png"])
    assert status == 200 and Image.open(io.BytesIO(png)).size == (20 * 16, 14 * 16)
    for bad, words in (({"prompt": "lots of pipes"}, "cannot read"), ({"prompt": "many pipes", "width": 5000}, "16..300"),
                       ({"prompt": "many pipes", "temperature": "hot"}, "temperature"), (b"not json", "JSON")):
        status, body = _http(server + "/api/level", bad)
        assert status == 400 and words in json.loads(body)["error"]
    status, _ = _http(server + "/api/level", {"prompt": "x" * 5000})
    assert status == 413
    assert _http(server + "/api/level/000000000000.png")[0] == 404
    assert _http(server + "/api/games/nope/episode.hdf5")[0] == 404


class GatedMaker(LevelMaker):
    """The real generator behind a gate, so that the test knows when requests are inside it."""

    def __init__(self):
        super().__init__()
        self.gate, self.entered = threading.Event(), threading.Semaphore(0)

    def make(self, *args, **kw):
        self.entered.release()
        self.gate.wait(120)
        return super().make(*args, **kw)


def test_level_requests_beyond_the_limit_are_told_the_generator_is_busy():
    maker = GatedMaker()
    with running_web_app(level_maker=maker) as url:      # max_level_requests = 3
        body = {"prompt": "no pipes", "width": 16}
        with ThreadPoolExecutor(3) as pool:
            inside = [pool.submit(_http, url + "/api/level", body) for _ in range(3)]
            for _ in range(3):
                assert maker.entered.acquire(timeout=120)
            status, reply = _http(url + "/api/level", body)
            assert status == 429 and "busy" in json.loads(reply)["error"]
            maker.gate.set()
            assert [f.result()[0] for f in inside] == [200, 200, 200]


@pytest.mark.slow
def test_websocket_game_at_game_speed_with_queue_busy_and_downloads(server, tmp_path):
    ws_url = server.replace("http", "ws") + "/ws/game"
    with connect(ws_url) as a:
        a.send(json.dumps({"t": "start", "world": "dream", "spawn": "../spawn"}))
        assert "unknown spawn" in _until(a, "error")["message"]
        a.send(json.dumps({"t": "start", "world": "dream", "spawn": "01_world_1-1"}))
        token = _until(a, "started")["token"]
        a.send(json.dumps({"t": "keys", "held": ["right"], "pressed": ["right"]}))
        with connect(ws_url) as b, connect(ws_url) as c:     # one game slot, one place in line
            b.send(json.dumps({"t": "start", "world": "real", "spawn": 0}))
            assert _until(b, "queued")["position"] == 1
            c.send(json.dumps({"t": "start", "world": "real", "spawn": 0}))
            assert "slots" in _until(c, "busy")["message"]
            steps, frames = [], 0
            while len(steps) < 20:
                m = a.recv(timeout=60)
                if isinstance(m, bytes):
                    assert m[0] == 0 and m[1:3] == b"\xff\xd8"      # side 0, a JPEG
                    frames += 1
                elif json.loads(m)["t"] == "step":
                    steps.append(json.loads(m))
            assert frames >= 20 and steps[-1]["step"] > steps[0]["step"]
            assert all(s["action"] == "right" for s in steps[2:])
            assert steps[-1]["info"]["camera_x"] > steps[0]["info"]["camera_x"]     # holding right scrolls the dream
            a.send("{not json")
            assert "JSON" in _until(a, "error")["message"]
            status, data = _http(f"{server}/api/games/{token}/episode.hdf5")
            assert status == 200
            (tmp_path / "ep.hdf5").write_bytes(data)
            ep = read_episode(tmp_path / "ep.hdf5")
            # the game runs on while the messages are read: the last streamed step may not be recorded yet
            assert len(ep) >= len(steps) - 2 and ep.attrs["source"] == "dream/human"
            status, gif = _http(f"{server}/api/games/{token}/last_minute.gif")
            assert status == 200 and Image.open(io.BytesIO(gif)).n_frames >= len(steps) - 2
            a.close()                                            # the slot goes to the one in line
            assert _until(b, "started")["sides"] == ["real"]
    with connect(ws_url) as d:
        d.send(json.dumps({"t": "start", "world": "real"}))
        _until(d, "started")
        with pytest.raises(ConnectionClosed):                    # over max_message_bytes: uvicorn closes it
            d.send(json.dumps({"t": "keys", "held": ["right"] * 2000, "pressed": []}))
            for _ in range(400):
                d.recv(timeout=60)


def test_idle_game_ends():
    with running_web_app(idle_timeout_s=1.5) as url, connect(url.replace("http", "ws") + "/ws/game") as ws:
        ws.send(json.dumps({"t": "start", "world": "real"}))
        _until(ws, "started")
        t0 = time.monotonic()
        assert "without input" in _until(ws, "idle", limit=10_000)["message"]
        assert time.monotonic() - t0 >= 1.0
