"""Is a level completable? The A* expert (agents/expert.py) plays it in the level simulator (envs/level_env.py)."""
from __future__ import annotations

from typing import Any

from smbwm.levels.level import Level


def play_level(level: Level, seed: int = 0, max_steps: int = 3000, **expert: Any) -> dict[str, Any]:
    """One expert episode on `level`: completed = the flag / level end was reached."""
    from smbwm.agents.expert import ExpertAgent
    from smbwm.envs.level_env import LevelEnv
    env = LevelEnv(level_text=level.text(), max_episode_steps=max_steps)
    agent = ExpertAgent(seed=seed, **expert)
    try:
        agent.bind(env)
        agent.reset(seed)
        obs, info = env.reset(seed=seed)
        steps, done = 0, False
        while not done:
            obs, _, term, trunc, info = env.step(agent.act(obs, info))
            steps += 1
            done = term or trunc
    finally:
        env.close()
    return {"completed": bool(info.get("flag_get")), "steps": steps, "x_pos": int(info.get("x_pos", 0)),
            "level_px": level.width * 16, "death": info.get("death", "") or ("timeout" if trunc and not term else "")}
