"""Train the world model: python src/main.py [experiment=tiny|cpu] data.dir=<episodes dir> [resume=true]

Outputs (checkpoints, samples, metrics.jsonl, the W&B run, the resolved config) go to the Hydra run
directory. Bad configs stop before any training with one line on stderr (exit status 2).
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

# OpenMP threads that spin while waiting turn a busy 2-core machine into a crawl (docs/benchmarks.md,
# Training step); sleeping waits cost nothing measurable when alone.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from smbwm.utils.config_errors import ConfigError, config_error  # noqa: E402


def register_defaults() -> None:
    """The defaults of `training`, `data`, `model` and `sampler` are their dataclasses' fields, written
    once there (config/trainer.yaml, model/, sampler/ and experiment files hold only what differs).
    Needed before composing config/trainer.yaml."""
    from smbwm.data.segments import DataConfig
    from smbwm.models.denoiser import DenoiserConfig
    from smbwm.models.sampler import SamplerConfig
    from smbwm.models.upsampler import UpsamplerConfig
    from smbwm.training.trainer import TrainerConfig
    from smbwm.utils.config_defaults import register_dataclass_defaults
    register_dataclass_defaults([("training", "dataclass", TrainerConfig), ("data", "default", DataConfig),
                                 ("model/denoiser", "dataclass", DenoiserConfig),
                                 ("model/upsampler", "dataclass", UpsamplerConfig),
                                 ("sampler", "dataclass", SamplerConfig)])


register_defaults()


def build(cfg: DictConfig, section: str):
    """Instantiate one typed dataclass config; unknown keys or wrong types become one clear line."""
    try:
        return instantiate(cfg[section], _convert_="all")
    except Exception as e:  # noqa: BLE001 - Hydra wraps TypeError etc. in its own exceptions
        msg = " ".join(x.strip() for x in str(e).splitlines() if x.strip()) or type(e).__name__
        config_error(f"bad config in {section!r}: {msg}")


def check(training, data, den, up, sampler) -> None:
    if len(den.channels) != len(den.depths) or len(den.channels) != len(den.attn_levels):
        config_error(f"model.denoiser: channels, depths and attn_levels must have the same length "
                     f"({len(den.channels)}, {len(den.depths)}, {len(den.attn_levels)})")
    if any(c <= 0 or c % 8 and c < 8 for c in den.channels) or den.context < 2 or den.cond_dim % 4:
        config_error(f"model.denoiser: impossible sizes (channels {den.channels}, context {den.context}, "
                     f"cond_dim {den.cond_dim} must be a multiple of 4)")
    for name, v in (("data.batch_size", data.batch_size), ("data.upsampler_batch_size", data.upsampler_batch_size),
                    ("data.pool_size", data.pool_size), ("training.steps", training.steps),
                    ("model.upsampler.channels", up.channels), ("sampler.num_steps", sampler.num_steps),
                    ("training.checkpoint_every", training.checkpoint_every)):
        if v <= 0:
            config_error(f"{name} must be positive, got {v}")
    if sampler.order not in (1, 2):
        config_error(f"sampler.order must be 1 (Euler) or 2 (Heun), got {sampler.order}")
    for name, v in (("training.self_context_fraction", training.self_context_fraction),
                    ("model.denoiser.sigma_max_fraction", den.sigma_max_fraction)):
        if not 0 <= v <= 1:
            config_error(f"{name} must be in [0, 1], got {v}")
    if training.self_context_steps < 0:
        config_error(f"training.self_context_steps must be >= 0, got {training.self_context_steps}")
    from smbwm.models.motion import REVEAL_FILLS
    if den.reveal_fill not in REVEAL_FILLS:
        config_error(f"model.denoiser.reveal_fill must be one of {', '.join(REVEAL_FILLS)}, got {den.reveal_fill!r}")
    if data.weighting not in ("uniform", "episode"):
        config_error(f"data.weighting must be uniform or episode, got {data.weighting!r}")


def _is_number(v, integer: bool = False) -> bool:
    return (isinstance(v, int) if integer else isinstance(v, (int, float))) and not isinstance(v, bool) \
        and math.isfinite(v)


def check_training(t) -> None:
    """Every training.* value that would crash later (or train nonsense silently) stops here."""
    rules = (  # name, integer?, test, what it must be
        ("lr", False, lambda v: v > 0, "a positive number"),
        ("upsampler_lr", False, lambda v: v > 0, "a positive number"),
        ("weight_decay", False, lambda v: v >= 0, "a number >= 0"),
        ("warmup", True, lambda v: v >= 0, "an integer >= 0"),
        ("grad_clip", False, lambda v: v > 0, "a positive number"),
        ("ema_decay", False, lambda v: 0 <= v < 1, "in [0, 1)"),
        ("checkpoint_every", True, lambda v: v > 0, "a positive integer"),
        ("keep", True, lambda v: v >= 1, "an integer >= 1 (the latest checkpoint always stays)"),
        ("log_every", True, lambda v: v > 0, "a positive integer"),
        ("image_every", True, lambda v: v > 0, "a positive integer"),
        ("upsampler_every", True, lambda v: v > 0, "a positive integer"),
        ("threads", True, lambda v: v >= 0, "an integer >= 0 (0: torch's default)"),
        ("seed", True, lambda v: v >= 0, "an integer >= 0"),
        ("cooldown_steps", True, lambda v: v > 0, "a positive integer"),
        ("cooldown_final", False, lambda v: 0 <= v <= 1, "in [0, 1]"),
    )
    for name, integer, ok, what in rules:
        v = getattr(t, name)
        if not _is_number(v, integer) or not ok(v):
            config_error(f"training.{name} must be {what}, got {v!r}")
    if t.cooldown_from is not None and not (_is_number(t.cooldown_from, True) and t.cooldown_from >= 0):
        config_error(f"training.cooldown_from must be null or a step >= 0, got {t.cooldown_from!r}")
    if t.precision not in ("auto", "bf16", "fp16", "fp32"):
        config_error(f"training.precision must be auto, bf16, fp16 or fp32, got {t.precision!r}")
    from smbwm.utils.device import pick_device
    try:
        pick_device(t.device)
    except (ValueError, RuntimeError) as e:
        config_error(f"training.device={t.device!r}: {str(e).splitlines()[0]} (use auto, cpu or cuda)")


def check_run_dir(cfg: DictConfig, run_dir: Path) -> None:
    """A run dir holding another run's checkpoints is continued (resume=true) or refused: training from
    step 0 there would interleave two runs' checkpoints, and pruning would delete the new ones."""
    ck = run_dir / "checkpoints"
    old = sorted(p.name for p in ck.glob("step_*")) if ck.is_dir() else []
    if not old and not (ck / "latest").exists() or cfg.resume:
        return
    if cfg.get("overwrite"):
        import shutil
        shutil.rmtree(ck, ignore_errors=True)
        print(f"overwrite=true: deleted the previous run's checkpoints in {ck}")
        return
    config_error(f"{run_dir} holds another run's checkpoints (latest {old[-1] if old else '?'}): resume=true to "
                 f"continue it, or a new dir (hydra.run.dir=...), or overwrite=true to delete them")


def train_paths(data) -> list[Path]:
    from smbwm.data.episode import EpisodeError
    from smbwm.data.split import SplitError, episodes_for
    if not data.dir:
        config_error("data.dir is not set: python src/main.py data.dir=<episodes dir> (collect data first: docs/data.md)")
    try:
        train = episodes_for(data.dir, "train", data.split)
    except (EpisodeError, SplitError) as e:
        config_error(str(e))
    if not train:
        config_error(f"{data.dir}: no training episodes (collect some: python src/collect.py out_dir={data.dir})")
    return train


def run(cfg: DictConfig, run_dir: Path) -> Path | None:
    training, data = build(cfg, "training"), build(cfg, "data")
    den, up = build(cfg.model, "denoiser"), build(cfg.model, "upsampler")
    sampler = build(cfg, "sampler")
    check(training, data, den, up, sampler)
    check_training(training)
    check_run_dir(cfg, run_dir)
    paths = train_paths(data)
    from smbwm.data.episode import EpisodeError
    from smbwm.training.trainer import Trainer
    from smbwm.utils.checkpoint import CheckpointError
    full = OmegaConf.to_container(cfg, resolve=True)
    try:
        trainer = Trainer(training, data, den, up, sampler, run_dir, paths, OmegaConf.to_container(cfg.wandb), full,
                          resume=cfg.resume, init_from=cfg.init_from)
    except (EpisodeError, CheckpointError) as e:
        config_error(str(e))
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if trainer.rank == 0:
        print(f"training on {len(paths)} episodes ({trainer.frames} frames), device {trainer.device}, "
              f"autocast {trainer.amp}, run dir {run_dir}")
    latest = trainer.train()
    if cfg.export and latest is not None and trainer.rank == 0:
        export(latest, Path(cfg.export))
    return latest


def export(folder: Path, out: Path) -> None:
    """Copy a checkpoint's EMA weights as fp16 (what ships in checkpoints/)."""
    import torch
    from smbwm.models.world_model import WorldModel
    model, meta = WorldModel.load(folder)
    meta.pop("format", None), meta.pop("version", None), meta.pop("denoiser"), meta.pop("upsampler")
    model.save(out, meta, dtype=torch.float16)
    print(f"exported {folder} -> {out} (fp16)")


@hydra.main(config_path="../config", config_name="trainer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        run(cfg, Path(HydraConfig.get().runtime.output_dir))
    except ConfigError:
        sys.exit(2)


if __name__ == "__main__":
    main()
