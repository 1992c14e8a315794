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

from utils.config_errors import config_error


def _config(cfg: DictConfig):
    from levels.generator import GeneratorConfig
    from levels.train import TrainConfig
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


@hydra.main(config_path="../config", config_name="level_gen", version_base=None)
def main(cfg: DictConfig) -> None:
    from levels.corpus import CorpusError
    from levels.generator import GeneratorError
    from levels.train import train
    tcfg = _config(cfg)
    if tcfg.model.n_embd % tcfg.model.n_head:
        config_error(f"model.n_embd={tcfg.model.n_embd} must be divisible by model.n_head={tcfg.model.n_head}")
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
