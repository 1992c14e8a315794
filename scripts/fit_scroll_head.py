"""Fit the scroll head of a world-model checkpoint alone, on the cached low-res training set.

The scroll head is a small classifier beside the denoiser's UNet (models.motion.ScrollHead); it
decides where the camera goes, so it decides most of an open-loop rollout. Fitting it alone costs a
few minutes instead of hours of joint training, which is what you want after changing its design
(a checkpoint whose head does not match the code gets a fresh head) or its training recipe. The rest
of the checkpoint is copied unchanged; joint training (`src/main.py init_from=<out>`) continues from it.

    python scripts/fit_scroll_head.py --data /work/data/smb/train --out /tmp/fitted [--checkpoint checkpoints]

Prints held-out accuracy teacher-forced (real past scrolls) and open-loop (the head's own past
scrolls over real frames, the situation of a dream), before and after.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from smbwm import actions as A  # noqa: E402
from smbwm.data.segments import SegmentSampler, load_lowres_episodes  # noqa: E402
from smbwm.data.split import load_split  # noqa: E402
from smbwm.models.denoiser import DenoiserConfig  # noqa: E402
from smbwm.models.upsampler import UpsamplerConfig  # noqa: E402
from smbwm.models.world_model import FILES, WorldModel, to_model  # noqa: E402
from smbwm.utils.checkpoint import CheckpointError, load_json, load_tensors  # noqa: E402
from smbwm.utils.device import autocast, autocast_dtype  # noqa: E402


def load_keeping_body(folder: Path) -> tuple[WorldModel, dict, bool]:
    """The checkpoint with the current code's scroll head: its own if the shapes match, else fresh."""
    meta = load_json(folder / FILES[2])
    model = WorldModel(DenoiserConfig(**meta["denoiser"]), UpsamplerConfig(**meta["upsampler"]))
    den = {k: v.float() for k, v in load_tensors(folder / FILES[0]).items()}
    head = {k[len("scroll_head."):]: v for k, v in den.items() if k.startswith("scroll_head.")}
    body = {k: v for k, v in den.items() if not k.startswith("scroll_head.")}
    missing, unexpected = model.denoiser.load_state_dict(body, strict=False)
    if unexpected or any(not k.startswith("scroll_head.") for k in missing):
        raise CheckpointError(f"{folder}: denoiser weights do not match model.json")
    try:
        model.denoiser.scroll_head.load_state_dict(head)
        kept = True
    except RuntimeError:
        kept = False
    model.upsampler.load_state_dict({k: v.float() for k, v in load_tensors(folder / FILES[1]).items()})
    return model, meta, kept


@torch.no_grad()
def held_out_accuracy(model: WorldModel, episodes, horizon: int = 15, windows: int = 400, seed: int = 0) -> dict:
    """Scroll accuracy on windows of held-out episodes: teacher-forced and open-loop over real frames."""
    rng = np.random.default_rng(seed)
    mh = torch.from_numpy(A.MULTI_HOT_TABLE.copy())
    c = model.context
    ok = [e for e in episodes if len(e.actions) >= c + horizon]
    picks = [(ok[i], int(rng.integers(len(ok[i].actions) - c - horizon + 2))) for i in rng.integers(len(ok), size=windows)]
    real = np.stack([e.scrolls[t + c - 1:t + c - 1 + horizon] for e, t in picks]).astype(np.int64)   # (N, horizon)
    teacher, own = [], []
    past_own = torch.as_tensor(np.stack([e.scrolls[t:t + c - 1] for e, t in picks]), dtype=torch.long)
    for h in range(horizon):
        obs = to_model(np.stack([e.low[t + h:t + h + c] for e, t in picks]))
        act = mh[np.stack([e.actions[t + h:t + h + c] for e, t in picks]).astype(np.int64)]
        past_real = torch.as_tensor(np.stack([e.scrolls[t + h:t + h + c - 1] for e, t in picks]), dtype=torch.long)
        teacher.append(model.denoiser.predict_scroll(obs, act, past_real).numpy())
        k = model.denoiser.predict_scroll(obs, act, past_own)
        own.append(k.numpy())
        past_own = torch.cat([past_own[:, 1:], k[:, None]], 1)
    moving = real != 0
    out = {}
    for name, pred in (("teacher_forced", np.stack(teacher, 1)), ("open_loop", np.stack(own, 1))):
        out[name] = {"exact": float((pred == real).mean()),
                     "direction_when_scrolling": float((np.sign(pred[moving]) == np.sign(real[moving])).mean()),
                     "mae_px": float(np.abs(pred - real).mean())}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints", help="world-model checkpoint folder")
    ap.add_argument("--data", required=True, help="episodes directory with split.json and the low-res cache")
    ap.add_argument("--out", required=True, help="folder for the checkpoint with the fitted head")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.checkpoint)
    if not (folder / FILES[2]).exists():
        sys.exit(f"error: {folder}: no world-model checkpoint here (expected {', '.join(FILES)})")
    try:
        train_paths, test_paths = load_split(args.data)
        model, meta, kept = load_keeping_body(folder)
    except (OSError, ValueError, KeyError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    if not test_paths:
        sys.exit(f"error: {args.data}: the split has no test episodes to measure on")
    print(f"{folder}: scroll head {'kept' if kept else 'does not match the code: starting fresh'}")
    test = load_lowres_episodes(test_paths, args.data)
    print("held out before:", held_out_accuracy(model, test))
    sampler = SegmentSampler(load_lowres_episodes(train_paths, args.data), model.context, seed=1)
    den = model.denoiser
    head = den.scroll_head
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    amp = autocast_dtype(torch.device("cpu"))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.05)
    bar = tqdm(range(args.steps), desc="fit scroll head", unit="step")
    for _ in bar:
        b = sampler.sample(args.batch)
        obs, _ = den.noise_context(to_model(b["obs"]))
        with autocast(torch.device("cpu"), amp):
            loss, acc = den.scroll_loss(obs, b["act"], b["scroll"], b["past_scroll"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc.item():.2f}")
    model.eval()
    print("held out after:", held_out_accuracy(model, test))
    keep = {k: v for k, v in meta.items() if k not in ("format", "version", "denoiser", "upsampler")}
    model.save(args.out, {**keep, "scroll_head_fit": {"steps": args.steps, "batch": args.batch, "lr": args.lr}})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
