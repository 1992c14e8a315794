"""What a training run leaves behind: W&B (offline by default), metrics.jsonl, sample strips as PNG.

The strip shows, per row: the last context frame, the real next frame and the dream's next frame at
60x64 (x4 nearest), then at 240x256 the real next frame and the upsampler's output from the real
low-res frame; the strip's batch also gives quick PSNRs next to copy-last.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import torch

from smbwm.data.segments import SegmentSampler
from smbwm.evaluation.metrics import psnr
from smbwm.models.world_model import to_model, to_uint8


@torch.no_grad()
def sample_strip(model, segments: SegmentSampler, pool, sampler_cfg, device, amp, rows: int = 4, n: int = 32):
    """(image (H, W, 3) uint8, metrics) from fixed samples (their own RNG: training data order is untouched)."""
    fixed = SegmentSampler(segments.episodes, segments.context, seed=1234)
    b = fixed.sample(n)
    obs = to_model(b["obs"], device)
    dummy_full = torch.zeros(n, 3, 240, 256, device=device)
    out = model.step(obs, dummy_full, b["act"].to(device), b["past_scroll"].to(device), sampler_cfg, amp,
                     torch.Generator(device).manual_seed(0))
    dream, real, last = to_uint8(out.low), b["target"].numpy(), b["obs"][:, -1].numpy()
    metrics = {"strip/psnr_low": psnr(dream, real), "strip/psnr_low_copy_last": psnr(last, real),
               "strip/scroll_acc": float((out.scroll.cpu() == b["scroll"].long()).float().mean())}
    rng = np.random.default_rng(0)
    i = rng.integers(pool.size, size=rows)
    prev, nxt = to_model(pool.prev[i], device), pool.next[i]
    up = to_uint8(model.upsampler(model.shift_full(prev, torch.as_tensor(pool.scroll[i])), to_model(pool.next_low[i], device)))
    metrics["strip/psnr_upsampler"] = psnr(up, nxt)
    metrics["strip/psnr_full_copy_last"] = psnr(pool.prev[i], nxt)
    big = lambda x: x.repeat(4, axis=-3).repeat(4, axis=-2)          # noqa: E731
    sep = np.full((240, 4, 3), 255, np.uint8)
    lines = [np.concatenate([big(last[r]), sep, big(real[r]), sep, big(dream[r]), sep, sep, nxt[r], sep, up[r]], 1)
             for r in range(rows)]
    return np.concatenate(lines, 0), metrics


def _open_jsonl(path: Path):
    """Append to a JSON-lines file, first dropping a last line a killed run left half written."""
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with open(path, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
    return open(path, "a")


class RunLogger:
    """Console-free logging: W&B (mode offline | online | disabled) plus metrics.jsonl and PNG strips."""

    def __init__(self, run_dir: Path, cfg: dict, full_config: dict, enabled: bool = True):
        self.run_dir, self.enabled, self.wandb = Path(run_dir), enabled, None
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = _open_jsonl(self.run_dir / "metrics.jsonl")
        mode = cfg.get("mode", "offline")
        if mode != "disabled":
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb
            id_file = self.run_dir / "wandb_id.txt"      # the same W&B run continues on resume
            run_id = (id_file.read_text().strip() if id_file.exists() else "") or uuid.uuid4().hex[:8]
            tmp = id_file.with_name(id_file.name + ".tmp")  # a kill -9 must not leave it empty
            tmp.write_text(run_id)
            os.replace(tmp, id_file)
            self.wandb = wandb.init(project=cfg.get("project", "smb-world-model"), name=cfg.get("name"),
                                    mode=mode, dir=str(self.run_dir), config=full_config, id=run_id,
                                    resume="allow")

    def scalars(self, stats: dict, step: int) -> None:
        if not self.enabled:
            return
        self.metrics.write(json.dumps({"step": step, **stats}) + "\n")
        self.metrics.flush()
        if self.wandb:
            self.wandb.log(stats, step=step)

    def strip(self, result, step: int) -> None:
        if not self.enabled:
            return
        img, metrics = result
        from PIL import Image
        d = self.run_dir / "samples"
        d.mkdir(exist_ok=True)
        Image.fromarray(img).save(d / f"step_{step:07d}.png")
        self.scalars(metrics, step)
        if self.wandb:
            import wandb
            self.wandb.log({"samples": wandb.Image(img, caption="context | real | dream (60x64) || real | upsampled")},
                           step=step)

    def finish(self) -> None:
        if self.enabled and self.wandb:
            self.wandb.finish()
