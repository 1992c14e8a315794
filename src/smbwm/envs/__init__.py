"""Environments that speak one Gymnasium API: the NES emulator, (later) MarioGPT levels, the dream.

Importing this package registers our ids under the `smbwm/` namespace, e.g.
`gymnasium.make("smbwm/SuperMarioBros-1-1-v0")`.
"""
from __future__ import annotations

import gymnasium

NAMESPACE = "smbwm"


def register_envs() -> None:
    from smbwm.stages import ALL_STAGES

    def reg(env_id: str, entry_point: str, **kwargs) -> None:
        if env_id not in gymnasium.registry:
            gymnasium.register(id=env_id, entry_point=entry_point, kwargs=kwargs)

    reg(f"{NAMESPACE}/SuperMarioBros-v0", "smbwm.envs.smb_env:SuperMarioBrosGym", level=None)
    reg(f"{NAMESPACE}/SuperMarioBrosRandomStages-v0", "smbwm.envs.smb_env:SuperMarioBrosGym", random_stages=True)
    for lv in ALL_STAGES:
        reg(f"{NAMESPACE}/SuperMarioBros-{lv}-v0", "smbwm.envs.smb_env:SuperMarioBrosGym", level=lv)
    reg(f"{NAMESPACE}/Dream-v0", "smbwm.envs.world_model_env:WorldModelEnv")   # the world model (checkpoints/)
    reg(f"{NAMESPACE}/MarioGPTLevels-v0", "smbwm.envs.level_env:LevelEnv")    # MarioGPT levels (level_text=, level_file=)


register_envs()
