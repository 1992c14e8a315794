"""Denoiser training speed at batch 32: fp32 vs bf16 autocast + channels_last (median of runs).

    python scripts/bench_train.py [--steps 5] [--runs 3] [--batch 32]

Times full training steps (forward, backward, AdamW) of the default denoiser (DenoiserConfig's defaults,
which config/model/default.yaml picks) and of a DIAMOND-size one (4.4M: channels 64x4, depths 2x4) on
random 60x64 batches.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from smbwm.models.denoiser import Denoiser, DenoiserConfig  # noqa: E402
from smbwm.utils.device import cpu_has_bf16, pick_device  # noqa: E402


def step_time(cfg: DenoiserConfig, batch: int, amp: bool, channels_last: bool, steps: int, device) -> float:
    torch.manual_seed(0)
    d = Denoiser(cfg).to(device)
    if channels_last:
        d = d.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(d.parameters(), lr=1e-4)
    obs = torch.rand(batch, cfg.context, 3, 60, 64, device=device) * 2 - 1
    act = torch.randint(0, 2, (batch, cfg.context, 6), device=device).float()
    scroll = torch.randint(-4, 8, (batch,), device=device)
    past = torch.randint(-4, 8, (batch, cfg.context - 1), device=device)
    target = torch.rand(batch, 3, 60, 64, device=device) * 2 - 1
    times = []
    for i in range(steps + 1):                       # the first step warms up oneDNN
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = d.loss(obs, act, scroll, past, target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    device = pick_device(a.device)
    models = {"default": DenoiserConfig(),
              "diamond-size": DenoiserConfig(channels=[64, 64, 64, 64], depths=[2, 2, 2, 2], cond_dim=256,
                                             attn_levels=[False, False, False, False])}
    print(f"device {device}, threads {torch.get_num_threads()}, cpu bf16 {cpu_has_bf16()}, batch {a.batch}, "
          f"median of {a.runs} runs x {a.steps} steps")
    print("| model | params | precision | s/step | samples/s |\n|---|---|---|---|---|")
    for name, cfg in models.items():
        params = sum(p.numel() for p in Denoiser(cfg).unet.parameters()) / 1e6
        for label, amp, cl in (("fp32", False, False), ("bf16 + channels_last", True, True)):
            t = statistics.median(step_time(cfg, a.batch, amp, cl, a.steps, device) for _ in range(a.runs))
            print(f"| {name} | {params:.2f}M | {label} | {t:.3f} | {a.batch / t:.1f} |", flush=True)


if __name__ == "__main__":
    main()
