"""Trains the world model (scroll head + denoiser, then upsampler) with exact resume.

One denoiser step per iteration, one upsampler step every `upsampler_every` iterations (its batches
come from a RAM pool of full-res pairs). AdamW with linear warmup, gradient clipping, EMA weights
(the EMA is what checkpoints ship), bf16 autocast + channels_last where the CPU has bf16, CUDA and
DDP (torchrun) on GPUs or gloo on CPU through the same code path.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from smbwm.data.segments import DataConfig, FramePairPool, Prefetcher, SegmentSampler, load_lowres_episodes
from smbwm.models.denoiser import DenoiserConfig
from smbwm.models.sampler import SamplerConfig
from smbwm.models.upsampler import UpsamplerConfig
from smbwm.models.world_model import WorldModel, to_model
from smbwm.training.log import RunLogger, sample_strip
from smbwm.utils.checkpoint import (CheckpointError, load_json, load_tensors, optimizer_from_files, optimizer_to_files,
                              save_json, save_tensors)
from smbwm.utils.device import autocast, autocast_dtype, pick_device, prepare_module


@dataclass
class TrainerConfig:
    steps: int = 20000                 # denoiser steps in total (a resumed run continues to this)
    upsampler_every: int = 4           # one upsampler step per N denoiser steps
    lr: float = 3e-4
    upsampler_lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup: int = 500
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    device: str = "auto"
    precision: str = "auto"            # auto (bf16 where supported) | bf16 | fp32
    checkpoint_every: int = 500
    keep: int = 2                      # checkpoints kept (oldest deleted; >= 1: the latest always stays)
    log_every: int = 20
    image_every: int = 1000
    seed: int = 0
    threads: int = 0                   # torch intra-op threads (0: torch's default)
    # Warmup-stable-decay: the learning rate stays constant (so a run can be resumed and extended at
    # will) until a cooldown is asked for; from step `cooldown_from` it falls linearly to
    # `cooldown_final` x lr over `cooldown_steps` steps (Hagele et al. 2024, "Scaling Laws and
    # Compute-Optimal Training Beyond Fixed Training Durations": a short cooldown matches a cosine
    # schedule planned for that length). Run it on a copy of the run to ship its end.
    cooldown_from: int | None = None
    cooldown_steps: int = 1000
    cooldown_final: float = 0.1
    # Dreams feed the model its own frames. With self_context_steps = n > 0, this fraction of each batch
    # has its last n context frames drawn by the EMA model (the play sampler, real scrolls) from the
    # real frames before them, so denoiser and scroll head learn to continue from their own drawings.
    self_context_steps: int = 0
    self_context_fraction: float = 0.5
    # Train the upsampler alone, the denoiser and scroll head frozen as loaded (init_from): every
    # iteration is one upsampler step. `steps` counts all iterations; model.json's `step` stays the
    # denoiser's and `upsampler_only_steps` counts these.
    upsampler_only: bool = False


class _Loss(nn.Module):
    """A module whose forward is the loss, so that DDP sees (and syncs) the call."""

    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, *args):
        return self.m.loss(*args)


def _ddp() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


class Trainer:
    def __init__(self, cfg: TrainerConfig, data: DataConfig, denoiser: DenoiserConfig, upsampler: UpsamplerConfig,
                 sampler: SamplerConfig, run_dir: Path, train_paths: list[Path], wandb_cfg: dict, full_config: dict,
                 *, resume: bool = False, init_from: str | None = None):
        """`resume`: continue from the run dir's latest checkpoint if there is one; `init_from`: else start
        from these weights (a checkpoint folder) with a fresh optimizer. `wandb_cfg` goes to RunLogger."""
        self.cfg, self.data_cfg, self.sampler_cfg, self.run_dir = cfg, data, sampler, Path(run_dir)
        self.rank, self.world = _ddp()
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        if self.world > 1 and torch.cuda.is_available():
            torch.cuda.set_device(self.rank % torch.cuda.device_count())
        self.device = pick_device(cfg.device)
        self.amp = autocast_dtype(self.device, cfg.precision)
        torch.manual_seed(cfg.seed + self.rank)
        denoiser = dataclasses.replace(denoiser, sigma_max=sampler.sigma_max)   # one source: the play sampler
        self.model = prepare_module(WorldModel(denoiser, upsampler), self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt_den = torch.optim.AdamW(self.model.denoiser.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.opt_up = torch.optim.AdamW(self.model.upsampler.parameters(), lr=cfg.upsampler_lr, weight_decay=cfg.weight_decay)
        den, up = _Loss(self.model.denoiser), _Loss(self.model.upsampler)
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            den, up = (nn.parallel.DistributedDataParallel(m, device_ids=ids) for m in (den, up))
        self.den_loss, self.up_loss = den, up
        episodes = load_lowres_episodes(train_paths, data.dir, data.cache_dir)
        self.frames = sum(len(e.low) for e in episodes)
        self.segments = SegmentSampler(episodes, denoiser.context, data.weighting, cfg.seed + 1000 * self.rank)
        self.pool = FramePairPool(episodes, data.pool_size, cfg.seed + 1000 * self.rank)
        self.step, self.up_steps = 0, 0
        self.up_only_steps = 0      # iterations of upsampler_only: the denoiser's steps are step - up_only_steps
        self.lr_origin = 0          # the step the learning-rate warm-up counts from (init_from: its step)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.full_config = full_config
        if resume and self.latest() is not None:
            self._resume()
        elif init_from:
            self._init_from(init_from)
        elif resume and self.rank == 0:
            print(f"resume=true but no checkpoint in {self.ckpt_dir}: starting from step 0")
        self._data_state = self.segments.state()
        b = data.batch_size
        lead = cfg.self_context_steps
        self.prefetch = Prefetcher(lambda: (self.segments.sample(b, lead), self.segments.state()), data.prefetch)
        self.log = RunLogger(self.run_dir, wandb_cfg, full_config, enabled=self.rank == 0)

    # --- one iteration ---
    def _lr(self, base: float) -> float:
        c = self.cfg
        lr = base * min(1.0, (self.step - self.lr_origin + 1) / max(1, c.warmup))
        if c.cooldown_from is not None and self.step >= c.cooldown_from:
            lr *= 1 - (1 - c.cooldown_final) * min(1.0, (self.step - c.cooldown_from) / max(1, c.cooldown_steps))
        return lr

    def _opt_step(self, opt: torch.optim.Optimizer, params, base_lr: float) -> float:
        gn = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        for g in opt.param_groups:
            g["lr"] = self._lr(base_lr)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(gn)

    @torch.no_grad()
    def self_context(self, obs: torch.Tensor, act: torch.Tensor, past: torch.Tensor):
        """obs (B, lead+c, 3,H,W), act (B, lead+c, 6), past (B, lead+c-1) real -> the (B, c, ...),
        (B, c, 6), (B, c-1) training context, its last `lead` frames drawn by the EMA model for a
        `self_context_fraction` of the batch."""
        lead, c = self.cfg.self_context_steps, self.model.context
        n = round(self.cfg.self_context_fraction * obs.shape[0])
        if lead and n:
            own = obs[:n].clone()
            with autocast(self.device, self.amp):
                for j in range(lead):          # frame j+c from frames j..j+c-1, with the real scroll into it
                    own[:, j + c] = self.ema.denoiser.sample_next(own[:, j:j + c], act[:n, j:j + c],
                                                                  past[:n, j + c - 1], self.sampler_cfg)
            obs = torch.cat([own, obs[n:]])
        return obs[:, lead:], act[:, lead:], past[:, lead:]

    def train_denoiser(self, batch: dict) -> dict:
        dev = self.device
        obs, target = to_model(batch["obs"], dev), to_model(batch["target"], dev)
        obs, act, past = self.self_context(obs, batch["act"].to(dev), batch["past_scroll"].to(dev))
        with autocast(dev, self.amp):
            loss, stats = self.den_loss(obs, act, batch["scroll"].to(dev), past, target, batch.get("mario"))
        loss.backward()
        stats["grad_norm"] = self._opt_step(self.opt_den, self.model.denoiser.parameters(), self.cfg.lr)
        return stats

    def train_upsampler(self) -> dict:
        if self.up_steps and self.up_steps % self.data_cfg.pool_refresh == 0:
            self.pool.refresh()
        b, dev = self.pool.sample(self.data_cfg.upsampler_batch_size), self.device
        prev, nxt, low = to_model(b["prev"], dev), to_model(b["next"], dev), to_model(b["next_low"], dev)
        with autocast(dev, self.amp):
            loss, stats = self.up_loss(self.model.shift_full(prev, b["scroll"]), low, nxt)
        loss.backward()
        self._opt_step(self.opt_up, self.model.upsampler.parameters(), self.cfg.upsampler_lr)
        self.up_steps += 1
        return stats

    @torch.no_grad()
    def _update_ema(self) -> None:
        d = min(self.cfg.ema_decay, (1 + self.step) / (10 + self.step))   # warm-up: early EMA follows the model
        for pe, p in zip(self.ema.parameters(), self.model.parameters()):
            pe.lerp_(p, 1 - d)
        for be, b in zip(self.ema.buffers(), self.model.buffers()):
            be.copy_(b)

    def train(self) -> Path | None:
        c = self.cfg
        bar = tqdm(total=c.steps, initial=self.step, desc="train", unit="step", disable=self.rank != 0,
                   dynamic_ncols=True)
        t_last, n_last, stats, up_stats = time.time(), self.step, {}, {}
        while self.step < c.steps:
            if c.upsampler_only:
                stats = {}
                up_stats = self.train_upsampler()
                self.up_only_steps += 1
            else:
                batch, self._data_state = self.prefetch.next()
                stats = self.train_denoiser(batch)
                if self.step % c.upsampler_every == 0:
                    up_stats = self.train_upsampler()
            stats.update(up_stats)
            self._update_ema()
            self.step += 1
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == c.steps:
                dt = time.time() - t_last
                batch = self.data_cfg.upsampler_batch_size if c.upsampler_only else self.data_cfg.batch_size
                sps = (self.step - n_last) * batch * self.world / max(dt, 1e-9)
                t_last, n_last = time.time(), self.step
                stats.update(lr=self._lr(c.lr), samples_per_s=sps)
                bar.set_postfix(loss=f"{stats.get('loss_denoise', float('nan')):.4f}",
                                up=f"{stats.get('loss_upsampler', float('nan')):.4f}",
                                acc=f"{stats.get('scroll_acc', float('nan')):.2f}", sps=f"{sps:.0f}")
                self.log.scalars(stats, self.step)
            if self.rank == 0 and (self.step % c.image_every == 0 or self.step == c.steps):
                self.log.strip(sample_strip(self.ema, self.segments, self.pool, self.sampler_cfg, self.device, self.amp),
                               self.step)
            if self.step % c.checkpoint_every == 0 or self.step == c.steps:
                self.save()
        bar.close()
        self.log.finish()
        return self.latest()

    # --- checkpoints ---
    def latest(self) -> Path | None:
        f = self.ckpt_dir / "latest"
        return self.ckpt_dir / f.read_text().strip() if f.exists() else None

    def save(self) -> Path | None:
        if self.rank != 0:
            return None
        name = f"step_{self.step:07d}"
        folder = self.ckpt_dir / name
        meta = {"step": self.step - self.up_only_steps, "upsampler_steps": self.up_steps, "frames": self.frames,
                "upsampler_only_steps": self.up_only_steps,
                "config": self.full_config}
        self.ema.save(folder, meta)                                 # the weights people play with
        st = folder / "train_state"
        save_tensors(st / "model.safetensors", self.model.state_dict())
        rest = {}
        for key, opt in (("opt_den", self.opt_den), ("opt_up", self.opt_up)):
            tensors, rest[key] = optimizer_to_files(opt)
            save_tensors(st / f"{key}.safetensors", tensors)
        save_tensors(st / "rng.safetensors", {"torch": torch.get_rng_state()})
        save_json(st / "state.json", {"step": self.step, "up_steps": self.up_steps, "up_only_steps": self.up_only_steps, "lr_origin": self.lr_origin, "optim": rest,
                                      "segments": self._data_state, "pool": self.pool.state()})
        save_json(self.ckpt_dir / "latest.json", {"latest": name})
        tmp = self.ckpt_dir / "latest.tmp"
        tmp.write_text(name)
        os.replace(tmp, self.ckpt_dir / "latest")
        # only this run's older checkpoints go: never the one just written, never a later step's folder
        # (main.py refuses a run dir holding another run's checkpoints, but a stale folder must not win)
        older = sorted(p for p in self.ckpt_dir.glob("step_*") if p.is_dir() and p.name < name)
        for p in older[:max(0, len(older) - (self.cfg.keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
        return folder

    def _init_from(self, path: str) -> None:
        """Start from a shipped checkpoint's (EMA) weights and its step count, with a fresh optimizer:
        how a new machine continues training from what git holds (run dirs do not travel)."""
        from smbwm.models.world_model import resolve_checkpoint
        model, meta = WorldModel.load(resolve_checkpoint(path), self.device)     # CheckpointError: one line
        self._carry_parts(model)
        sd = model.state_dict()
        if any(getattr(model.upsampler.cfg, k) != getattr(self.model.upsampler.cfg, k) for k in ("diffusion", "palette")):
            up = self.model.upsampler.from_deterministic(model.upsampler.state_dict())
            sd = {k: v for k, v in sd.items() if not k.startswith("upsampler.")} | {f"upsampler.{k}": v for k, v in up.items()}
        try:
            self.model.load_state_dict(sd)
        except RuntimeError as e:
            why = " ".join(str(e).split())[:300]
            raise CheckpointError(f"init_from={path}: its model has other sizes than model.* here ({why})") from None
        self.ema.load_state_dict(sd)
        self.step = int(meta.get("step", 0))
        self.up_steps = int(meta.get("upsampler_steps", 0))
        self.up_only_steps = int(meta.get("upsampler_only_steps", 0))
        self.step += self.up_only_steps
        self.lr_origin = self.step      # a fresh optimizer warms up again
        if self.rank == 0:
            print(f"initialised from {path} (step {self.step}; optimizer state starts fresh)")

    def _carry_parts(self, loaded: WorldModel) -> None:
        """The end-of-episode model and tile book a loaded checkpoint holds are not trained here: both the
        model and its EMA take them as they are, so every checkpoint this run writes keeps them."""
        for m in (self.model, self.ema):
            m.end_model = copy.deepcopy(loaded.end_model)
            m.tiles = copy.deepcopy(loaded.tiles)

    def _resume(self) -> None:
        folder = self.latest()
        if folder is None:
            return                                                   # nothing yet: a fresh start
        st = folder / "train_state"
        ema, _ = WorldModel.load(folder, self.device)
        self._carry_parts(ema)
        self.model.load_state_dict(load_tensors(st / "model.safetensors"))
        self.ema.load_state_dict(ema.state_dict())
        s = load_json(st / "state.json")
        for key, opt in (("opt_den", self.opt_den), ("opt_up", self.opt_up)):
            optimizer_from_files(opt, load_tensors(st / f"{key}.safetensors"), s["optim"][key])
        torch.set_rng_state(load_tensors(st / "rng.safetensors")["torch"])
        self.step, self.up_steps, self.lr_origin = s["step"], s["up_steps"], s.get("lr_origin", 0)
        self.up_only_steps = s.get("up_only_steps", 0)
        self.segments.load_state(s["segments"])
        self.pool.load_state(s["pool"])
        if self.rank == 0:
            print(f"resumed from {folder} at step {self.step}")
