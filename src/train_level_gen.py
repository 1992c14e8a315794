"""Train the small text-to-level generator on mario-gpt's SMB corpus (CPU, resumable, W&B offline).

    nice -n 19 python src/train_level_gen.py                      # the shipped generator (config/level_gen.yaml)
    python src/train_level_gen.py max_steps=800 max_minutes=60     # continue the same run longer
    python src/train_level_gen.py out_dir=runs/lg resume=false model.n_layer=2

Re-running resumes from <out_dir> (model.safetensors + optimizer.safetensors + level_gen.json).
"""
from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from smbwm.utils.config_defaults import register_dataclass_defaults
from smbwm.utils.config_errors import config_error


def register_defaults() -> None:
    """The top-level keys and `model` default to TrainConfig's and GeneratorConfig's fields, written once
    there (config/level_gen.yaml holds only what differs). Needed before composing config/level_gen.yaml."""
    from smbwm.levels.train import TrainConfig
    register_dataclass_defaults([("", "level_gen_dataclass", TrainConfig)], target=False)


register_defaults()


def _config(cfg: DictConfig):
    from smbwm.levels.generator import GeneratorConfig
    from smbwm.levels.train import TrainConfig
    d = OmegaConf.to_container(cfg, resolve=True)
    d.pop("wandb", None)
    known = {f.name for f in fields(TrainConfig)}
    if set(d) - known:
        config_error(f"unknown option(s) {sorted(set(d) - known)}; known: {sorted(known)}")
    try:
        d["model"] = GeneratorConfig(**d.get("model", {}))
    except TypeError as e:
        config_error(f"bad model options: {e}")
    return TrainConfig(**d)


def _check_resume(tcfg) -> None:
    """A resumed run keeps its checkpoint's architecture: a model.* option given on the command line
    that differs from it would be ignored silently, so it stops here instead."""
    import json
    from hydra.core.hydra_config import HydraConfig
    from smbwm.levels.generator import META_FILE
    meta = Path(tcfg.out_dir) / META_FILE
    if not tcfg.resume or not meta.exists():
        return
    try:
        saved = json.loads(meta.read_text())["config"]
    except (ValueError, KeyError, TypeError, OSError):
        return                                         # load_checkpoint reports a damaged one
    given = {o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task}
    differ = [f"{k}={getattr(tcfg.model, k[6:])} (checkpoint: {saved.get(k[6:])})" for k in sorted(given)
              if k.startswith("model.") and k[6:] in saved and saved[k[6:]] != getattr(tcfg.model, k[6:], None)]
    if differ:
        config_error(f"{tcfg.out_dir} holds a generator with another architecture: {', '.join(differ)}; "
                     "resume=false to start over there, or a new out_dir")


@hydra.main(config_path="../config", config_name="level_gen", version_base=None)
def main(cfg: DictConfig) -> None:
    from smbwm.levels.corpus import CorpusError
    from smbwm.levels.generator import GeneratorError
    from smbwm.levels.train import train
    tcfg = _config(cfg)
    if tcfg.model.n_embd % tcfg.model.n_head:
        config_error(f"model.n_embd={tcfg.model.n_embd} must be divisible by model.n_head={tcfg.model.n_head}")
    for name in ("max_steps", "batch_size", "eval_every", "save_every", "eval_batches"):
        v = getattr(tcfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            config_error(f"{name} must be a positive integer, got {v!r}")
    _check_resume(tcfg)
    run = None
    if cfg.wandb.mode != "disabled":
        import wandb
        Path(cfg.wandb.dir).mkdir(parents=True, exist_ok=True)
        os.environ.setdefault("WANDB_SILENT", "true")
        run = wandb.init(mode=cfg.wandb.mode, dir=cfg.wandb.dir, project=cfg.wandb.project,
                         config=OmegaConf.to_container(cfg, resolve=True))
    try:
        history = train(tcfg, log=run.log if run else None)
    except (CorpusError, GeneratorError) as e:
        config_error(str(e))
    finally:
        if run:
            run.finish()
    last = history[-1] if history else {}
    vals = [h["val_loss"] for h in history if "val_loss" in h]
    print(f"saved {tcfg.out_dir} at step {last.get('step', 0)}; train loss {last.get('loss')}, "
          f"val loss {vals[-1] if vals else 'n/a'}")


if __name__ == "__main__":
    main()
