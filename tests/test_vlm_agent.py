"""The VLM agent against a real chat-completions server on 127.0.0.1 (tests/chat_server.py, scripted
answers) and the real emulator: request contents, reply parsing, fallbacks, retries, rate limits,
timeouts, a server that dies mid-episode, realtime mode, and full `collect.py agent=vlm` runs."""
from __future__ import annotations

import base64
import io
import itertools
import json

import gymnasium
import numpy as np
import pytest
from PIL import Image

from smbwm import actions as A
import smbwm.envs  # noqa: F401 - registers the emulator ids
from smbwm.agents.base import AgentStopped
from smbwm.agents.vlm import VLMAgent
from smbwm.agents.vlm_prompt import parse_action
from chat_server import ChatServer, ChatServerConfig
from conftest import run_collect
from smbwm.data.episode import list_episodes, read_episode

S = A.SIMPLE_MOVEMENT  # NOOP, right, right+A, right+B, right+B+A, A, left
LEGAL = "0:NOOP, 1:right, 2:right+A, 3:right+B, 4:right+B+A, 5:A, 6:left"


@pytest.fixture(scope="module")
def env():
    e = gymnasium.make("smbwm/SuperMarioBros-1-1-v0")
    yield e
    e.close()


def make_agent(srv: ChatServer, **kw) -> VLMAgent:
    return VLMAgent(**{"base_url": srv.base_url, "hold": 1, "backoff": 0.01, "timeout": 5.0,
                       "print_summary": False, **kw})


def play(env, agent: VLMAgent, steps: int):
    """Returns the frames the agent saw, the bytes it chose and its per-step texts."""
    obs, info = env.reset(seed=0)
    agent.reset(0)
    seen, chosen, texts = [], [], []
    for _ in range(steps):
        seen.append(obs.copy())
        chosen.append(agent.act(obs, info))
        texts.append(agent.last_text)
        obs, _, _, _, info = env.step(chosen[-1])
    return seen, chosen, texts


def images(request: dict) -> list[np.ndarray]:
    out = []
    for part in request["messages"][1]["content"]:
        if part["type"] == "image_url":
            head, b64 = part["image_url"]["url"].split(",", 1)
            assert head == "data:image/png;base64"
            img = Image.open(io.BytesIO(base64.b64decode(b64)))
            assert img.format == "PNG" and img.mode == "RGB"
            out.append(np.asarray(img))
    return out


@pytest.mark.parametrize("text, index", [
    ("3", 3), ("Action: 2", 2), ("**4**", 4),
    ("Right (1) walks into the Goomba, so I jump: 4.", 4),   # last legal integer wins
    ("Wait 0.5 s, then 2", 2),                                # decimals are not ids
    ("<think>maybe 6? or 5</think>\nAnswer: 1", 1),           # reasoning blocks are skipped
    ("2 is good. 12 would be nicer", 2),                      # 12 is not a legal id
    ("right+A", 2), ("banana", None), ("", None), (None, None), ("press 9", None), ("x2 speed", None),
])
def test_parser_takes_the_last_legal_integer(text, index):
    assert parse_action(text, S) == index


def test_requests_carry_frames_and_legal_actions(env):
    script = ["2", "A pit ahead. I'll run and jump: 4.", "banana", "<think>6</think> 3"]
    with ChatServer(ChatServerConfig(script=script, default="1")) as srv:
        agent = make_agent(srv, history=3, history_stride=1, upscale=2, detail="low")
        seen, chosen, texts = play(env, agent, 5)
    assert chosen == [S[2], S[4], A.NOOP, S[3], S[1]]          # banana -> the NOOP fallback
    assert texts == script + ["1"]
    assert len(srv.requests) == 5
    for t, req in enumerate(srv.requests):
        assert req["model"] == "scripted-vlm"                   # the server's only model (GET /models)
        assert req["messages"][0]["role"] == "system" and "Super Mario Bros" in req["messages"][0]["content"]
        imgs = images(req)
        assert len(imgs) == min(t + 1, 3)
        assert all(im.shape == (480, 512, 3) for im in imgs)    # 2x nearest-neighbour upscale
        for k, im in enumerate(imgs):                           # oldest first, the last is the current frame
            np.testing.assert_array_equal(im[::2, ::2], seen[t - len(imgs) + 1 + k])
        parts = req["messages"][1]["content"]
        labels = [p["text"] for p in parts if p["type"] == "text"]
        assert labels[len(imgs) - 1].startswith("Frame now") and LEGAL in labels[-1]
        if t >= 2:
            assert labels[0].startswith("Frame 2 steps ago")
        assert all(p["image_url"]["detail"] == "low" for p in parts if p["type"] == "image_url")
    s = agent.summary()
    assert (s["calls"], s["fallbacks"], s["fallback_rate"], s["retries"]) == (5, 1, 0.2, 0)
    attrs = agent.episode_attrs()
    assert attrs["vlm_model"] == "scripted-vlm" and attrs["vlm_fallbacks"] == 1 and attrs["vlm_history"] == 3
    assert attrs["vlm_actions"] == LEGAL


def test_hold_and_previous_fallback(env):
    with ChatServer(ChatServerConfig(script=["1", "no idea"], default="5")) as srv:
        agent = make_agent(srv, hold=3, fallback="previous", action_set="right_only")
        _, chosen, texts = play(env, agent, 7)
    assert chosen == [A.to_byte(["right"])] * 7     # garbage and 5 (not in right_only) keep the previous action
    assert texts == ["1", None, None, "no idea", None, None, "5"]
    asked = json.dumps(srv.requests[0])
    assert len(srv.requests) == 3 and "0:NOOP, 1:right, 2:right+A, 3:right+B, 4:right+B+A." in asked
    assert "5:A" not in asked and "from 0 to 4" in asked
    assert agent.summary()["fallbacks"] == 2


def test_server_errors_and_rate_limits_are_retried(env):
    script = [{"status": 500}, {"status": 429, "retry_after": "0.3"}, "3"]
    with ChatServer(ChatServerConfig(script=script)) as srv:
        agent = make_agent(srv)
        _, chosen, _ = play(env, agent, 1)
    assert chosen == [S[3]] and len(srv.requests) == 3
    assert srv.times[2] - srv.times[1] >= 0.3                   # Retry-After honoured
    s = agent.summary()
    assert (s["retries"], s["rate_limited"], s["fallbacks"]) == (2, 1, 0)


def test_rate_limit_beyond_max_retry_after_stops_clearly(env):
    with ChatServer(ChatServerConfig(script=[{"status": 429, "retry_after": "600"}])) as srv:
        agent = make_agent(srv, max_retry_after=5)
        with pytest.raises(AgentStopped, match=r"Retry-After 600 s exceeds max_retry_after 5 s"):
            play(env, agent, 1)
    assert len(srv.requests) == 1


@pytest.mark.parametrize("status, hint", [(401, "check agent.api_key or OPENAI_API_KEY"),
                                          (404, "check agent.model and agent.base_url")])
def test_non_retryable_status_stops_at_once_with_a_hint(env, status, hint):
    with ChatServer(ChatServerConfig(script=[{"status": status}])) as srv:
        agent = make_agent(srv)
        with pytest.raises(AgentStopped, match=rf"answered HTTP {status} \({hint}\)"):
            play(env, agent, 1)
    assert len(srv.requests) == 1


def test_slow_reply_times_out_and_is_retried(env):
    with ChatServer(ChatServerConfig(script=[{"delay": 2.0, "text": "3"}, "5"])) as srv:
        agent = make_agent(srv, timeout=0.5)
        _, chosen, texts = play(env, agent, 1)
    assert chosen == [S[5]] and texts == ["5"] and agent.summary()["retries"] == 1
    with ChatServer(ChatServerConfig(default=lambda body: {"delay": 1.5, "text": "1"})) as srv:
        agent = make_agent(srv, timeout=0.3, max_retries=1)
        with pytest.raises(AgentStopped) as e:
            play(env, agent, 1)
    assert str(e.value).startswith(f"VLM server {srv.base_url}: failed 2 attempts, last: APITimeoutError")


def test_realtime_mode_keeps_playing_while_the_model_thinks(env):
    with ChatServer(ChatServerConfig(default=lambda body: {"delay": 0.3, "text": "1"})) as srv:
        agent = make_agent(srv, mode="realtime", realtime_fps=0, hold=2)
        obs, info = env.reset(seed=0)
        agent.reset(0)
        chosen = []
        while agent.calls < 2 and len(chosen) < 5000:
            chosen.append(agent.act(obs, info))
            obs, _, term, trunc, info = env.step(chosen[-1])
            if term or trunc:             # a loaded machine answers slowly: the game may time out meanwhile
                obs, info = env.reset(seed=0)
    first = chosen.index(S[1])
    assert first >= 1 and set(chosen[:first]) == {A.NOOP}      # the game ran on with the fallback meanwhile
    assert agent.calls == 2 and all(lag >= 1 for lag in agent.lags)
    assert agent.summary()["mean_lag_steps"] >= 1


def test_bad_options_fail_with_one_line():
    with pytest.raises(ValueError, match="agent.mode must be one of"):
        VLMAgent(mode="turbo")
    with pytest.raises(ValueError, match="unknown NES button 'jump'"):
        VLMAgent(fallback="jump")
    with pytest.raises(ValueError, match="agent.prompt_file: no such file"):
        VLMAgent(prompt_file="/nonexistent/prompt.txt")


def test_dead_server_ends_the_episode_truncated_and_saved(tmp_path, capsys):
    with ChatServer(ChatServerConfig(default="3", die_after=5)) as srv:
        report = run_collect(["agent=vlm", "env=nes", "episodes=3", "max_steps=100", f"out_dir={tmp_path}",
                              f"agent.base_url={srv.base_url}", "agent.api_key=sk-override-123", "agent.hold=2",
                              "agent.max_retries=1", "agent.backoff=0.01"])
    files = list_episodes(tmp_path)
    assert len(files) == 1 and report["episodes_written"] == 1
    ep = read_episode(files[0])
    assert len(ep) == 10 and ep.frames.shape == (11, 240, 256, 3)     # 5 answered calls held 2 steps each
    assert ep.truncated[-1] and not ep.truncated[:-1].any() and not ep.terminated.any()
    assert ep.step_text == ["3", ""] * 5 and set(ep.actions) == {S[3]}
    assert "failed 2 attempts" in ep.attrs["stopped_reason"]
    assert len(report["errors"]) == 1 and report["errors"][0].startswith(f"agent stopped: VLM server {srv.base_url}")
    assert srv.headers[0]["authorization"] == "Bearer sk-override-123"
    assert "sk-override" not in json.dumps(ep.attrs)
    assert "agent.api_key=<hidden>" in ep.attrs["collect_command"]               # the command, without the key
    assert capsys.readouterr().err.count("agent stopped") == 1


def test_collect_with_env_variables_and_prompt_file(tmp_path, monkeypatch, capsys):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("You play Mario. Answer with one id.")
    replies = itertools.cycle(["1", "3 then 4", "no clue", "2"])
    with ChatServer(ChatServerConfig(default=lambda body: next(replies))) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
        report = run_collect(["agent=vlm", "env=nes", "episodes=2", "max_steps=24", "level=1-2",
                              f"out_dir={tmp_path / 'eps'}", "agent.hold=3", "agent.history=2",
                              f"agent.prompt_file={prompt}", "agent.max_retries=0"])
    assert srv.headers[0]["authorization"] == "Bearer sk-from-env"
    assert all(r["messages"][0]["content"] == prompt.read_text() for r in srv.requests)
    files = list_episodes(tmp_path / "eps")
    assert len(files) == 2 and report["episodes_written"] == 2 and not report["errors"]
    calls = fallbacks = 0
    for p in files:
        ep = read_episode(p)
        assert ep.attrs["source"] == "nes/vlm" and ep.attrs["level"] == "1-2"
        assert ep.attrs["vlm_model"] == "scripted-vlm" and ep.attrs["vlm_prompt"] == prompt.read_text()
        assert ep.attrs["vlm_history"] == 2 and ep.attrs["vlm_base_url"] == srv.base_url
        answered = [s for s in ep.step_text if s]
        assert ep.step_text[::3] == answered and ep.attrs["vlm_calls"] == len(answered)
        assert ep.attrs["vlm_fallbacks"] == answered.count("no clue")
        calls, fallbacks = calls + len(answered), fallbacks + ep.attrs["vlm_fallbacks"]
    agent = report["agent"]
    assert agent["calls"] == [calls] and agent["fallbacks"] == [fallbacks] and agent["mean_latency_s"][0] > 0
    assert report["steps"] == 48 and report["mean_max_x"] is not None and sum(report["actions"].values()) > 0.99
    out = capsys.readouterr().out
    assert f"vlm (scripted-vlm, pause mode): 48 steps, {calls} calls, fallbacks {fallbacks}" in out


def test_collect_on_mariogpt_levels(tmp_path):
    """The same agent plays MarioGPT levels (a corpus window in the NES-look simulator)."""
    with ChatServer(ChatServerConfig(script=["1", "3"], default="garbage")) as srv:
        report = run_collect(["agent=vlm", "env=levels", "level=corpus", "episodes=1", "max_steps=12",
                              f"out_dir={tmp_path}", f"agent.base_url={srv.base_url}", "agent.hold=4",
                              "agent.history=1"])
    files = list_episodes(tmp_path)
    assert len(files) == 1 and report["episodes_written"] == 1 and not report["errors"]
    ep = read_episode(files[0])
    assert ep.attrs["source"] == "levels/vlm" and ep.level_text and (ep.terminated[-1] or ep.truncated[-1])
    answers = ["1", "3", "garbage"][:len(srv.requests)]
    assert ep.step_text[::4] == answers and ep.attrs["vlm_fallbacks"] == answers.count("garbage")
    assert list(ep.actions) == ([S[1]] * 4 + [S[3]] * 4 + [A.NOOP] * 4)[:len(ep)]
    for k, req in enumerate(srv.requests):   # the simulator's own frames were sent
        np.testing.assert_array_equal(images(req)[0], ep.frames[4 * k])


@pytest.mark.slow
def test_collect_in_the_dream(tmp_path, tiny_checkpoint, tiny_spawns):
    """The same agent plays inside the world model: it only sees frames and info."""
    with ChatServer(ChatServerConfig(script=["2", "jump: 4", "??"], default="1")) as srv:
        report = run_collect(["agent=vlm", "env=dream", f"env.checkpoint={tiny_checkpoint}",
                              f"env.spawn_dir={tiny_spawns}", "episodes=1", "max_steps=8", f"out_dir={tmp_path}",
                              f"agent.base_url={srv.base_url}", "agent.hold=2", "agent.history=2",
                              "agent.history_stride=1"])
    files = list_episodes(tmp_path)
    assert len(files) == 1 and report["episodes_written"] == 1 and not report["errors"]
    ep = read_episode(files[0])
    assert ep.attrs["source"] == "dream/vlm" and len(ep) == 8 and ep.truncated[-1]
    assert list(ep.actions) == [S[2]] * 2 + [S[4]] * 2 + [A.NOOP] * 2 + [S[1]] * 2
    assert ep.step_text == ["2", "", "jump: 4", "", "??", "", "1", ""] and ep.attrs["vlm_fallbacks"] == 1
    assert len(srv.requests) == 4
    for t, req in zip((0, 2, 4, 6), srv.requests):   # the dream's own frames were sent, oldest first
        sent = images(req)
        np.testing.assert_array_equal(sent[-1], ep.frames[t])
        if t:
            np.testing.assert_array_equal(sent[0], ep.frames[t - 1])
