"""Training loop of the level generator (entry: src/train_level_gen.py)."""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm import tqdm

from smbwm.levels.corpus import corpus_level, corpus_windows
from smbwm.levels.generator import (META_FILE, N_PREFIX, GeneratorConfig, build_model, encode,
                              load_checkpoint, save_checkpoint)
from smbwm.levels.level import Level
from smbwm.levels.prompts import prompt_of


@dataclass
class TrainConfig:
    out_dir: str = "checkpoints/level_gen"
    batch_size: int = 8  # 50-column windows (4 prompt tokens + 700 tiles) per step
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 30
    max_steps: int = 1500
    max_minutes: float = 62.0  # stop (and save) after this much wall time, whichever comes first
    eval_every: int = 100
    save_every: int = 50
    val_fraction: float = 0.05  # the last columns of the corpus are held out
    eval_batches: int = 4
    seed: int = 0
    threads: int = 1  # on a shared 2-core CPU one thread is much faster than fighting for two
    bf16: bool = True  # autocast bf16 (AMX where the CPU has it)
    resume: bool = True
    corpus_columns: int | None = None  # use only the first N corpus columns (tiny test runs)
    model: GeneratorConfig = field(default_factory=GeneratorConfig)


def window_tokens(level: Level, width: int) -> torch.Tensor:
    """(N, N_PREFIX + 14*width) token ids of every window, each with its own prompt."""
    rows = [encode(w, prompt_of(w)) for w in corpus_windows(width, level=level)]
    return torch.tensor(rows, dtype=torch.long)


def _split(cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    level = corpus_level()
    if cfg.corpus_columns:
        level = level.window(0, cfg.corpus_columns)
    width = cfg.model.context_columns
    n_val = max(width + 1, int(level.width * cfg.val_fraction))
    train = level.window(0, level.width - n_val)
    val = level.window(level.width - n_val, n_val)
    return window_tokens(train, width), window_tokens(val, width)


def _loss(model, batch: torch.Tensor, bf16: bool) -> torch.Tensor:
    labels = batch.clone()
    labels[:, :N_PREFIX] = -100  # the prompt is given, never predicted
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        return model(input_ids=batch, labels=labels).loss


def _lr(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


@torch.no_grad()
def evaluate(model, val: torch.Tensor, cfg: TrainConfig) -> float:
    model.eval()
    g = torch.Generator().manual_seed(1234)  # same val batches every time: comparable curves
    idx = torch.randint(0, len(val), (cfg.eval_batches, cfg.batch_size), generator=g)
    loss = sum(_loss(model, val[i], cfg.bf16).item() for i in idx) / cfg.eval_batches
    model.train()
    return loss


def _save(model, opt, cfg: TrainConfig, step: int, history: list[dict]) -> None:
    out = Path(cfg.out_dir)
    save_checkpoint(model, cfg.model, out, extra={"step": step, "history": history[-200:]})
    flat = {}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            flat[f"{i}.{k}"] = v.detach().clone().reshape(-1) if k == "step" else v.detach().contiguous()
    if flat:
        save_file(flat, str(out / "optimizer.safetensors.tmp"))
        (out / "optimizer.safetensors.tmp").replace(out / "optimizer.safetensors")


def _resume(cfg: TrainConfig, opt_factory):
    out = Path(cfg.out_dir)
    if cfg.resume and (out / META_FILE).exists():
        model, mcfg, meta = load_checkpoint(out)
        cfg.model = mcfg  # a resumed run keeps the checkpoint's architecture
        model.train()
        opt = opt_factory(model)
        if (out / "optimizer.safetensors").exists():
            flat = load_file(str(out / "optimizer.safetensors"))
            sd = opt.state_dict()
            state: dict[int, dict] = {}
            for key, v in flat.items():
                i, k = key.split(".", 1)
                state.setdefault(int(i), {})[k] = v.reshape(()) if k == "step" else v
            sd["state"] = state
            opt.load_state_dict(sd)
        return model, opt, int(meta.get("step", 0)), list(meta.get("history", []))
    model = build_model(cfg.model)
    model.train()
    return model, opt_factory(model), 0, []


def train(cfg: TrainConfig, log=None) -> list[dict]:
    """Train (or resume) until max_steps or max_minutes; returns the history of logged losses."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    train_tok, val_tok = _split(cfg)
    make_opt = lambda m: torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)  # noqa: E731
    model, opt, step, history = _resume(cfg, make_opt)
    start = time.time()
    bar = tqdm(total=cfg.max_steps, initial=step, desc="level-gen", unit="step")
    while step < cfg.max_steps and (time.time() - start) < cfg.max_minutes * 60:
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)  # resumable sample order
        batch = train_tok[torch.randint(0, len(train_tok), (cfg.batch_size,), generator=g)]
        for grp in opt.param_groups:
            grp["lr"] = _lr(cfg, step)
        loss = _loss(model, batch, cfg.bf16)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        rec = {"step": step, "loss": round(loss.item(), 4), "lr": _lr(cfg, step - 1)}
        if step % cfg.eval_every == 0 or step == cfg.max_steps:
            rec["val_loss"] = round(evaluate(model, val_tok, cfg), 4)
        history.append(rec)
        bar.update(1)
        bar.set_postfix(loss=rec["loss"], val=rec.get("val_loss", ""))
        if log:
            log(rec)
        if step % cfg.save_every == 0:
            _save(model, opt, cfg, step, history)
    bar.close()
    _save(model, opt, cfg, step, history)
    (Path(cfg.out_dir) / "train_summary.json").write_text(json.dumps(
        {"step": step, "windows_train": len(train_tok), "windows_val": len(val_tok),
         "params": sum(p.numel() for p in model.parameters()), "last": history[-1] if history else None}, indent=1))
    return history
