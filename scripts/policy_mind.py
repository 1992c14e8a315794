"""Draw the Modular Mind's activity for one episode on the real emulator (PNG, optional GIF).

    python scripts/policy_mind.py                                  # 1-1, shipped weights, expert tier
    python scripts/policy_mind.py --level 5-1 --tier erratic --max-steps 300 --out mind.png --gif mind.gif

Rows: each specialist's hidden units (blue -, red +), the shared latent after the RecursiveLink
bridge, the coordinator's gates on the action owners, the action probabilities with the chosen
action in orange (grey: a random explore choice), Mario's x position; sampled frames above.
"""
from __future__ import annotations

import argparse
import sys

from smbwm.agents.modular_mind import DEFAULT_WEIGHTS, TIERS, ModularMindAgent
from smbwm.policy.picture import PictureConfig, gif_frames, panel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--level", default="1-1")
    ap.add_argument("--weights", default=DEFAULT_WEIGHTS)
    ap.add_argument("--tier", default="expert", choices=sorted(TIERS))
    ap.add_argument("--explore", type=float, default=None, help="overrides --tier")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-steps", type=int, default=400)
    ap.add_argument("--out", default="modular_mind.png")
    ap.add_argument("--gif", default=None, help="also write an animated GIF (frame + panel with a cursor)")
    ap.add_argument("--px-per-step", type=int, default=3)
    a = ap.parse_args(argv)
    try:
        from smbwm.envs.smb_env import SuperMarioBrosGym
        from smbwm.stages import parse_stage
        parse_stage(a.level)
        agent = ModularMindAgent(weights=a.weights, tier=a.tier, explore=a.explore, record=True, seed=a.seed)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    env = SuperMarioBrosGym(level=a.level, max_episode_steps=a.max_steps)
    obs, info = env.reset(seed=a.seed)
    agent.reset(seed=a.seed)
    frames, xs = [obs], []
    for _ in range(a.max_steps):
        xs.append(int(info["x_pos"]))
        obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
        frames.append(obs)
        if terminated or truncated:
            break
    env.close()
    cfg = PictureConfig(px_per_step=a.px_per_step)
    img = panel(frames, agent.trace, agent.spec, xs, cfg)
    img.save(a.out)
    end = "flag" if info.get("flag_get") else ("death" if terminated else "time limit")
    print(f"{a.out}: {len(agent.trace)} steps on {a.level}, max x_pos {max(xs + [int(info['x_pos'])])}, ended by {end}")
    if a.gif:
        gf = gif_frames(frames, img, len(agent.trace), cfg)
        gf[0].save(a.gif, save_all=True, append_images=gf[1:], duration=130, loop=0)
        print(f"{a.gif}: {len(gf)} frames")
    return 0


if __name__ == "__main__":
    sys.exit(main())
