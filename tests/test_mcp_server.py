"""The MCP server through the official SDK's own client: in process, and as a stdio subprocess."""
from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from PIL import Image

from smbwm.serving.mcp_tools import build_server

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"generate_level", "level_suggestions", "list_spawns", "dream", "play_level", "model_card"}


def run(fn):
    return anyio.run(fn)


def picture(block) -> Image.Image:
    assert block.type == "image"
    return Image.open(io.BytesIO(base64.b64decode(block.data)))


@pytest.fixture(scope="module")
def server():
    return build_server()          # one server: its models load once for the module, as in a real process


def test_tools_are_listed_with_range_checked_arguments(server):
    async def go():
        async with Client(server) as c:
            return {t.name: t for t in (await c.list_tools()).tools}
    tools = run(go)
    assert set(tools) == TOOLS
    gen = tools["generate_level"].input_schema["properties"]
    assert gen["width"]["minimum"] == 16 and gen["width"]["maximum"] == 300 and gen["temperature"]["maximum"] == 2.0
    dream = tools["dream"].input_schema["properties"]
    assert dream["steps"]["maximum"] == 150 and "scripted" in json.dumps(dream["agent"])
    assert all(t.description for t in tools.values())


def test_generate_level_then_play_it_by_id_and_by_text(server):
    progress = []

    async def on_progress(p, total, message):
        progress.append((p, total))

    async def go():
        async with Client(server) as c:
            made = await c.call_tool("generate_level", {"prompt": "some pipes, no enemies", "width": 24, "seed": 3})
            lid = made.content[0].text.split()[1].rstrip(":")
            by_id = await c.call_tool("play_level", {"level_id": lid, "agent": "expert", "steps": 400},
                                      progress_callback=on_progress)
            text = "\n".join(made.content[0].text.splitlines()[1:])
            by_text = await c.call_tool("play_level", {"level_text": text, "agent": "random", "steps": 10})
            return made, by_id, by_text
    made, by_id, by_text = run(go)
    assert not made.is_error and [b.type for b in made.content] == ["text", "image"]
    rows = made.content[0].text.splitlines()[1:]
    assert len(rows) == 14 and all(len(r) == 24 for r in rows)
    assert picture(made.content[1]).size == (24 * 16, 14 * 16)
    outcome = json.loads(by_id.content[0].text)
    assert not by_id.is_error and outcome["level_px"] == 24 * 16 and outcome["x_reached"] > 40
    assert outcome["flag"] and outcome["ended"] and outcome["steps"] < 400       # the A* expert finishes this level
    gif = picture(by_id.content[1])
    assert gif.format == "GIF" and gif.n_frames == outcome["steps"] + 1
    assert progress and progress[0] == (5, 400) and all(t == 400 for _, t in progress)
    assert json.loads(by_text.content[0].text)["steps"] <= 10


def test_small_tools(server):
    async def go():
        async with Client(server) as c:
            return [await c.call_tool(n, {}) for n in ("list_spawns", "level_suggestions", "model_card")]
    spawns, suggestions, card = run(go)
    ids = [s["id"] for s in spawns.structured_content["result"]]
    assert ids[0] == "01_world_1-1" and len(ids) == len(list((ROOT / "spawn").glob("*/full_res.npy")))
    assert suggestions.structured_content["parts"]["elevation"] == ["low", "high"]
    text = card.content[0].text
    assert "shipped world model" in text and "Fidelity" in text and "Fidelity over training" not in text


def test_dream_gives_a_gif_and_playability_figures(server):
    progress = []

    async def on_progress(p, total, message):
        progress.append(p)

    async def go():
        async with Client(server) as c:
            gif = await c.call_tool("dream", {"spawn": "01_world_1-1", "actions": [130], "steps": 6},
                                    progress_callback=on_progress)
            strip = await c.call_tool("dream", {"spawn": "1", "agent": "random", "steps": 3, "image": "strip"})
            return gif, strip
    gif, strip = run(go)
    assert not gif.is_error and [b.type for b in gif.content] == ["image", "text"]
    assert picture(gif.content[0]).n_frames == 7 and progress == [5, 6]
    figures = json.loads(gif.content[1].text)
    assert figures["steps"] == 6 and figures["driven_by"] == "actions"
    assert isinstance(figures["camera_travel_px"], int) and figures["camera_travel_px"] > 0   # right+B from 1-1 scrolls
    assert 0.0 <= figures["mario_shown_fraction"] <= 1.0
    assert picture(strip.content[0]).size == (4 * 256, 240) and json.loads(strip.content[1].text)["driven_by"] == "random"


def test_bad_arguments_are_one_line_errors(server):
    bad = [("generate_level", {"prompt": "lots of pipes"}, "cannot read 'lots of pipes'"),
           ("generate_level", {"prompt": "many pipes", "width": 1000}, "width"),
           ("generate_level", {"prompt": "many pipes", "temperature": "hot"}, "temperature"),
           ("dream", {"spawn": "../../etc"}, "unknown spawn"),
           ("dream", {"steps": 0}, "steps"),
           ("dream", {"actions": [256]}, "actions.0"),
           ("dream", {"actions": [1], "agent": "random"}, "not both"),
           ("dream", {"agent": "expert"}, "agent"),
           ("play_level", {}, "exactly one"),
           ("play_level", {"level_text": "XX\nXX"}, "14"),
           ("play_level", {"level_id": "gpt:000000000000"}, "unknown level id")]

    async def go():
        async with Client(server) as c:
            return [await c.call_tool(name, args) for name, args, _ in bad]
    for (name, _, words), r in zip(bad, run(go)):
        assert r.is_error, name
        msg = r.content[0].text
        assert words in msg and "\n" not in msg and "Traceback" not in msg, msg


@pytest.mark.slow
def test_stdio_subprocess(tmp_path):
    params = StdioServerParameters(command=sys.executable, args=[str(ROOT / "src" / "mcp_server.py")], cwd=str(tmp_path))

    async def go():
        async with Client(params) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            spawns = await c.call_tool("list_spawns", {})
            made = await c.call_tool("generate_level", {"prompt": "many pipes", "width": 16, "seed": 1})
            bad = await c.call_tool("generate_level", {"prompt": "many pipes", "width": 10})
            return names, spawns, made, bad
    names, spawns, made, bad = run(go)
    assert names == TOOLS
    assert spawns.structured_content["result"][0]["id"] == "01_world_1-1"
    assert [b.type for b in made.content] == ["text", "image"] and made.content[1].mime_type == "image/png"
    assert bad.is_error and "width" in bad.content[0].text


def test_vlm_agent_dreams_with_an_endpoint_and_its_replies_come_back(server, monkeypatch):
    from chat_server import ChatServer, ChatServerConfig

    async def go():
        async with Client(server) as c:
            return await c.call_tool("dream", {"agent": "vlm", "steps": 2})
    assert "OPENAI_BASE_URL" in run(go).content[0].text
    with ChatServer(ChatServerConfig(default="3")) as chat:
        monkeypatch.setenv("OPENAI_BASE_URL", chat.base_url)
        r = run(go)
    figures = json.loads(r.content[1].text)
    assert not r.is_error and figures["driven_by"] == "vlm" and figures["agent_replies"] == ["3"]
    assert len(chat.requests) == 1           # the agent holds its choice for 4 steps (config/agent/vlm.yaml)


@pytest.mark.slow
def test_streamable_http_subprocess(tmp_path):
    """`python src/mcp_server.py --http PORT`: the SDK's client by URL lists the tools and calls one."""
    import socket
    import subprocess
    import time
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "src" / "mcp_server.py"), "--http", str(port)], cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert "streamable HTTP" in proc.stderr.readline()
        for _ in range(100):                      # the line comes before the socket listens
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)

        async def go():
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                return {t.name for t in (await c.list_tools()).tools}, await c.call_tool("list_spawns", {})
        names, spawns = run(go)
        assert names == TOOLS and spawns.structured_content["result"][0]["id"] == "01_world_1-1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    bad = subprocess.run([sys.executable, str(ROOT / "src" / "mcp_server.py"), "--http", "70000"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--http must be a port" in bad.stderr and "Traceback" not in bad.stderr
