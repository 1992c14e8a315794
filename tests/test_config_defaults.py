"""Defaults written once: config files backed by a dataclass hold only the fields that differ from it,
and the composed configs still carry every field (so `section.field=value` overrides need no `+`)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import OmegaConf

from conftest import CONFIG_DIR, compose


def differing_only(path: Path, section: dict, default) -> list[str]:
    fields = {f.name for f in dataclasses.fields(default)}
    return [f"{path.name}: {k}" for k, v in section.items()
            if k in fields and not dataclasses.is_dataclass(getattr(default, k)) and v == getattr(default, k)]


def yaml(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path))


def test_sampler_presets_hold_what_differs_and_load_whole():
    from smbwm.models.sampler import SamplerConfig, load_sampler
    for f in sorted((CONFIG_DIR / "sampler").glob("*.yaml")):
        y = yaml(f)
        assert differing_only(f, y, SamplerConfig()) == []
        fields = {k: v for k, v in y.items() if k != "_target_"}
        assert load_sampler(f.stem) == dataclasses.replace(SamplerConfig(), **fields)
        assert compose("trainer", [f"sampler={f.stem}"]).sampler.keys() >= {x.name for x in dataclasses.fields(SamplerConfig)}


def test_one_default_sampler_everywhere_a_user_plays():
    from smbwm.game.config import PlayConfig, build_parser
    from smbwm.models.sampler import load_sampler
    from smbwm.serving.catalog import SAMPLERS
    from smbwm.serving.games import GameSpec
    from smbwm.utils.paths import DEFAULT_SAMPLER, sampler_presets
    names = sorted(f.stem for f in (CONFIG_DIR / "sampler").glob("*.yaml"))
    assert sorted(sampler_presets()) == names and sampler_presets()[0] == DEFAULT_SAMPLER   # the default first
    assert SAMPLERS == sampler_presets()
    assert PlayConfig().sampler == GameSpec().sampler == DEFAULT_SAMPLER
    assert build_parser().parse_args([]).sampler == DEFAULT_SAMPLER
    assert load_sampler() == load_sampler(DEFAULT_SAMPLER)
    import evaluate  # noqa: F401 - registers the eval/playability/sampler dataclass defaults, as its CLI does
    evaluate = compose("evaluate", []).sampler
    assert {k: evaluate[k] for k in ("num_steps", "sigma_min", "s_churn")} == \
        {k: getattr(load_sampler(), k) for k in ("num_steps", "sigma_min", "s_churn")}


def test_model_files_hold_what_differs_and_compose_whole():
    from main import build
    from smbwm.models.denoiser import DenoiserConfig
    from smbwm.models.upsampler import UpsamplerConfig
    defaults = {"denoiser": DenoiserConfig(), "upsampler": UpsamplerConfig()}
    for f in [CONFIG_DIR / "model" / "default.yaml", *sorted((CONFIG_DIR / "experiment").glob("*.yaml"))]:
        for name, default in defaults.items():
            assert differing_only(f, (yaml(f).get("model") or {}).get(name) or {}, default) == []
    cfg = compose("trainer", ["model.denoiser.past_scroll_dropout=0.5"])
    assert build(cfg.model, "denoiser") == dataclasses.replace(DenoiserConfig(), past_scroll_dropout=0.5)
    assert build(cfg.model, "upsampler") == UpsamplerConfig()


def test_policy_and_level_gen_files_hold_what_differs():
    import train_level_gen  # noqa: F401 - registers the level_gen defaults
    import train_policy
    from smbwm.levels.train import TrainConfig
    from smbwm.policy.reinforce import LossConfig
    from smbwm.policy.rollout import RewardConfig
    for f in sorted((CONFIG_DIR / "policy" / "schedule").glob("*.yaml")):
        assert differing_only(f, yaml(f), train_policy.Schedule()) == []
    policy = yaml(CONFIG_DIR / "policy.yaml")
    assert differing_only(CONFIG_DIR / "policy.yaml", policy.get("reward") or {}, RewardConfig()) == []
    assert differing_only(CONFIG_DIR / "policy.yaml", policy.get("loss") or {}, LossConfig()) == []
    _, sched, reward, loss = train_policy._check(compose("policy", ["policy/schedule=smoke", "loss.gamma=0.9"]))
    assert sched.iterations == 2 and sched.lr == train_policy.Schedule().lr
    assert reward == RewardConfig() and loss == dataclasses.replace(LossConfig(), gamma=0.9)
    level_gen = yaml(CONFIG_DIR / "level_gen.yaml")
    assert differing_only(CONFIG_DIR / "level_gen.yaml", level_gen, TrainConfig()) == []
    assert train_level_gen._config(compose("level_gen", ["model.n_layer=3"])) == \
        dataclasses.replace(TrainConfig(), model=dataclasses.replace(TrainConfig().model, n_layer=3))
