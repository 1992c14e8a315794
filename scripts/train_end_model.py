"""Train the end model of a world-model checkpoint (models.end_model) on real emulator episodes.

The positives are the last step of every episode the game ended (Mario touched an enemy, fell, or took
the flag); the negatives are the steps just before it (Mario beside the goomba that is about to kill
him, or on top of the one he stomps) and steps drawn at random from the rest. The threshold is the
lowest P(end) whose rate of false ends on the held-out episodes' other steps is at most
--max-false-rate; the model and its threshold are written into the checkpoint folder
(end_model.safetensors, `end_model` in model.json) and its held-out figures to end_model_report.json.

    python scripts/train_end_model.py --data dataset_files/smb/train --heldout dataset_files/smb/heldout_levels
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.nn import functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from smbwm.data.episode import EpisodeError, list_episodes, read_episode  # noqa: E402
from smbwm.models.end_model import WINDOW, EndModel, EndModelConfig  # noqa: E402
from smbwm.models.world_model import END_FILE, FILES, add_to_checkpoint, resolve_checkpoint, to_model  # noqa: E402
from smbwm.utils.checkpoint import CheckpointError  # noqa: E402


def episode_pairs(path: Path, tail: int, random_steps: int, rng: np.random.Generator | None, margin: int = 0
                  ) -> tuple[torch.Tensor, np.ndarray]:
    """Prepared inputs (N,6,64+2*margin,64+2*margin) fp16 and labels (N,) of one episode's transitions: its
    last `tail` and `random_steps` random earlier ones (rng None: every transition)."""
    ep = read_episode(path)
    n = len(ep.actions)
    if rng is None:
        steps = np.arange(n)
    else:
        early = np.arange(max(0, n - tail))
        steps = np.concatenate([rng.choice(early, min(random_steps, len(early)), replace=False),
                                np.arange(max(0, n - tail), n)]).astype(np.int64)
    labels = np.zeros(len(steps), np.float32)
    labels[steps == n - 1] = float(bool(ep.terminated[-1]))
    frames = np.asarray(ep.frames)
    out = [EndModel.prepare(to_model(frames[steps[i:i + 64]]), to_model(frames[steps[i:i + 64] + 1]), margin).half()
           for i in range(0, len(steps), 64)]
    return torch.cat(out), labels


def load_pairs(dirs: list[str], tail: int, random_steps: int, seed: int, jitter: int
               ) -> tuple[torch.Tensor, np.ndarray]:
    """The training examples of every episode in `dirs`: prepared inputs and labels."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for p in tqdm(episode_paths(dirs), desc="read training episodes", unit="episode"):
        x, y = episode_pairs(p, tail, random_steps, rng, jitter)
        xs.append(x)
        ys.append(y)
    return torch.cat(xs), np.concatenate(ys)


def episode_paths(dirs: list[str]) -> list[Path]:
    paths = [p for d in dirs for p in list_episodes(d)]
    if not paths:
        sys.exit(f"error: no episodes in {', '.join(dirs)} (record some: python src/collect.py, see docs/data.md)")
    return paths


def heldout_predictions(model: EndModel, dirs: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(end) at every transition of every held-out episode, its label, and its distance from the end."""
    ps, ys, ds = [], [], []
    for p in tqdm(episode_paths(dirs), desc="score held-out episodes", unit="episode"):
        x, y = episode_pairs(p, 0, 0, None)
        ps.append(predict(model, x))
        ys.append(y)
        ds.append(np.arange(len(y))[::-1])
    return np.concatenate(ps), np.concatenate(ys), np.concatenate(ds)


@torch.no_grad()
def predict(model: EndModel, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    model.eval()
    return np.concatenate([torch.sigmoid(model(x[i:i + batch].float())).numpy() for i in range(0, len(x), batch)])


def pick_threshold(p: np.ndarray, y: np.ndarray, max_false_rate: float) -> float:
    """The lowest threshold whose false-end rate on the negatives is at most max_false_rate."""
    neg = np.sort(p[y == 0])[::-1]
    k = int(np.floor(max_false_rate * len(neg)))       # negatives allowed above the threshold
    return float(min(max(neg[k] + 1e-6, 0.05), 0.99)) if len(neg) > k else 0.5


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", nargs="+", required=True, help="folders of training episodes (HDF5)")
    ap.add_argument("--heldout", nargs="+", required=True, help="folders of held-out episodes: threshold and figures")
    ap.add_argument("--checkpoint", default=None, help="world-model checkpoint folder (default: the shipped one)")
    ap.add_argument("--out", default=None, help="folder to write into (default: the checkpoint folder)")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--positive-share", type=float, default=0.25, help="share of each batch drawn from the positives")
    ap.add_argument("--tail", type=int, default=12, help="last steps of each episode taken as (hard) examples")
    ap.add_argument("--random-steps", type=int, default=24, help="random earlier steps per training episode")
    ap.add_argument("--jitter", type=int, default=0,
                    help="px: cut each training window at random up to this far from Mario's centre (augmentation)")
    ap.add_argument("--max-false-rate", type=float, default=0.001, help="false ends per held-out step allowed")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    folder = resolve_checkpoint(args.checkpoint)
    if not (folder / FILES[2]).exists():
        sys.exit(f"error: {folder}: no world-model checkpoint here (expected {', '.join(FILES)})")
    out = Path(args.out) if args.out else folder
    torch.manual_seed(args.seed)
    try:
        episode_paths(args.heldout)                    # a wrong held-out folder fails now, not after training
        x, y = load_pairs(args.data, args.tail, args.random_steps, args.seed, args.jitter)
    except EpisodeError as e:
        sys.exit(f"error: {e}")
    if not y.any():
        sys.exit("error: no training episode ends with terminated: nothing to learn an end from")
    pos, neg = np.flatnonzero(y > 0), np.flatnonzero(y == 0)
    print(f"training pairs: {len(pos)} ends, {len(neg)} other steps")

    model = EndModel(EndModelConfig()).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.1)
    rng = np.random.default_rng(args.seed)
    n_pos = max(1, int(args.batch * args.positive_share))
    t0 = time.time()
    bar = tqdm(range(args.steps), desc="train end model", unit="step")
    for step in bar:
        model.train()
        idx = np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, args.batch - n_pos)])
        off = rng.integers(0, 2 * args.jitter + 1, (len(idx), 2))
        xb = torch.stack([x[i, :, dy:dy + WINDOW, dx:dx + WINDOW] for i, (dy, dx) in zip(idx, off)]).float()
        flip = torch.as_tensor(rng.random(len(idx)) < 0.5)
        xb[flip] = xb[flip].flip(-1)                      # mirrored collisions are collisions too
        with torch.autocast("cpu", torch.bfloat16):
            logits = model(xb.contiguous(memory_format=torch.channels_last)).float()
        loss = F.binary_cross_entropy_with_logits(logits, torch.as_tensor(y[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")

    try:
        p, hy, hd = heldout_predictions(model, args.heldout)
    except EpisodeError as e:
        sys.exit(f"error: {e}")
    thr = pick_threshold(p, hy, args.max_false_rate)
    model.cfg.threshold = thr
    ends, others = hy > 0, hy == 0
    report = {
        "threshold": thr, "train_seconds": round(time.time() - t0, 1), "steps": args.steps,
        "training_data": args.data, "heldout_data": args.heldout, "jitter": args.jitter,
        "heldout_ends": int(ends.sum()), "heldout_steps": int(len(hy)),
        "ends_found": float((p[ends] > thr).mean()),                       # recall on the game's ends
        "false_ends_per_1000_steps": float(1000 * (p[others] > thr).mean()),
        # the hard negatives: the steps just before an end (Mario beside what is about to kill him)
        "false_ends_per_1000_last_10_steps": float(1000 * (p[others & (hd <= 10)] > thr).mean()),
        "ends_found_at_0.5": float((p[ends] > 0.5).mean()),
        "false_ends_per_1000_steps_at_0.5": float(1000 * (p[others] > 0.5).mean()),
    }
    for k, v in report.items():
        print(f"{k}: {v}")
    try:
        written = add_to_checkpoint(folder, out, END_FILE, model.state_dict(), "end_model", asdict(model.cfg), report,
                                    torch.float16)
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    print(f"wrote {out / END_FILE} (threshold {thr:.3f}) and {written}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
