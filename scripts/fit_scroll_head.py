"""Fit the scroll head of a world-model checkpoint alone, on the cached low-res training set.

The scroll head is a small classifier beside the denoiser's UNet (models.motion.ScrollHead); it
decides where the camera goes, so it decides most of an open-loop rollout. Fitting it alone costs a
few minutes instead of hours of joint training, which is what you want after changing its design
(a checkpoint whose head does not match the code gets a fresh head) or its training recipe. The rest
of the checkpoint (upsampler, end model, tile book) is copied unchanged; joint training
(`src/main.py init_from=<out>`) continues from it.

    python scripts/fit_scroll_head.py --data dataset_files/smb/train --out runs/fitted [--checkpoint checkpoints]
        [--test-data DIR] [--drawn-windows 600 --drawn-steps 12 --cache runs/drawn]

Prints held-out accuracy teacher-forced (real past scrolls) and open-loop (the head's own past
scrolls, the situation of a dream), before and after; with --drawn-windows also on contexts the
denoiser drew, which then make up --drawn-share of every training batch (docs/model.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
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
from smbwm.models.sampler import SamplerConfig, load_sampler  # noqa: E402
from smbwm.models.upsampler import UpsamplerConfig  # noqa: E402
from smbwm.models.world_model import END_FILE, FILES, TILES_FILE, WorldModel, to_model, to_uint8  # noqa: E402
from smbwm.utils.checkpoint import CheckpointError, load_json, load_tensors, save_json, save_tensors  # noqa: E402
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


def real_windows(episodes, length: int, count: int, seed: int) -> dict[str, np.ndarray]:
    """`count` random windows of `length` consecutive real frames: frames (N, length, 60, 64, 3) uint8,
    actions (N, length) uint8, scrolls (N, length) int8 (scrolls[:, t]: the camera's move from frame t to t+1)."""
    rng = np.random.default_rng(seed)
    ok = [e for e in episodes if len(e.actions) >= length]
    if not ok:
        raise ValueError(f"no episode has the {length} steps a window needs")
    picks = [(ok[i], int(rng.integers(len(ok[i].actions) - length + 1))) for i in rng.integers(len(ok), size=count)]
    return {"frames": np.stack([e.low[t:t + length] for e, t in picks]),
            "actions": np.stack([e.actions[t:t + length] for e, t in picks]),
            "scrolls": np.stack([e.scrolls[t:t + length] for e, t in picks])}


@torch.no_grad()
def draw_windows(model: WorldModel, windows: dict[str, np.ndarray], context: int, sampler: SamplerConfig,
                 batch: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """The same windows with every frame after the first `context` drawn by the denoiser (the play
    sampler, the real actions and the real camera scroll into each frame): the contexts a dream gives
    the scroll head, with the scroll the game made as the answer."""
    gen = torch.Generator().manual_seed(seed)
    mh = torch.from_numpy(A.MULTI_HOT_TABLE.copy())
    frames = windows["frames"].copy()
    n, length = frames.shape[:2]
    for i in tqdm(range(0, n, batch), desc="draw the dream's contexts", unit="batch"):
        own = to_model(frames[i:i + batch])                                     # (b, length, 3, 60, 64)
        act = mh[windows["actions"][i:i + batch].astype(np.int64)]
        k = torch.as_tensor(windows["scrolls"][i:i + batch], dtype=torch.long)
        for t in range(context, length):      # frame t from frames t-context..t-1 and the real scroll into t
            own[:, t] = model.denoiser.sample_next(own[:, t - context:t], act[:, t - context:t], k[:, t - 1],
                                                   sampler, gen)
        frames[i:i + batch] = to_uint8(own.flatten(0, 1)).reshape(own.shape[0], length, *frames.shape[2:])
    return {**windows, "frames": frames}


@torch.no_grad()
def held_out_accuracy(model: WorldModel, windows: dict[str, np.ndarray]) -> dict:
    """Scroll accuracy over windows (frames, actions, scrolls as from real_windows): the head predicts
    the move into each frame after the first context ones, teacher-forced (the real past scrolls) and
    open-loop (its own past scrolls, the situation of a dream)."""
    mh = torch.from_numpy(A.MULTI_HOT_TABLE.copy())
    c = model.context
    horizon = windows["frames"].shape[1] - c
    real = windows["scrolls"][:, c - 1:c - 1 + horizon].astype(np.int64)                   # (N, horizon)
    teacher, own = [], []
    past_own = torch.as_tensor(windows["scrolls"][:, :c - 1], dtype=torch.long)
    for h in range(horizon):
        obs = to_model(windows["frames"][:, h:h + c])
        act = mh[windows["actions"][:, h:h + c].astype(np.int64)]
        past_real = torch.as_tensor(windows["scrolls"][:, h:h + c - 1], dtype=torch.long)
        teacher.append(model.denoiser.predict_scroll(obs, act, past_real).numpy())
        k = model.denoiser.predict_scroll(obs, act, past_own)
        own.append(k.numpy())
        past_own = torch.cat([past_own[:, 1:], k[:, None]], 1)
    moving = real != 0
    out = {}
    for name, pred in (("teacher_forced", np.stack(teacher, 1)), ("open_loop", np.stack(own, 1))):
        out[name] = {"exact": round(float((pred == real).mean()), 4),
                     "exact_steps_1_4": round(float((pred[:, :4] == real[:, :4]).mean()), 4),
                     "exact_steps_9_on": round(float((pred[:, 8:] == real[:, 8:]).mean()), 4),
                     "direction_when_scrolling": round(float((np.sign(pred[moving]) == np.sign(real[moving])).mean()), 4),
                     "mae_px": round(float(np.abs(pred - real).mean()), 3)}
    return out


def context_batch(windows: dict[str, np.ndarray], batch: int, context: int, rng: np.random.Generator) -> dict:
    """A training batch from windows: a random context of `context` frames inside a window (after its
    first frame, so drawn windows give contexts with 1..all frames drawn) and the real scroll after it."""
    n, length = windows["frames"].shape[:2]
    i = rng.integers(n, size=batch)
    t = rng.integers(1, length - context + 1, size=batch)          # the context is frames t..t+context-1
    idx = t[:, None] + np.arange(context)
    return {"obs": torch.from_numpy(windows["frames"][i[:, None], idx]),
            "act": torch.from_numpy(A.MULTI_HOT_TABLE[windows["actions"][i[:, None], idx]]),
            "past_scroll": torch.from_numpy(windows["scrolls"][i[:, None], idx[:, :-1]]),
            "scroll": torch.from_numpy(windows["scrolls"][i, t + context - 1])}


def write_fitted(folder: Path, out: Path, model: WorldModel, fit: dict) -> None:
    """`folder` copied to `out` with the fitted head: only denoiser.safetensors (stored in the dtype it
    had) and model.json's `scroll_head_fit` differ; the end model and the tile book come along."""
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != folder.resolve():
        for name in (*FILES, END_FILE, TILES_FILE):
            if (folder / name).exists():
                shutil.copy2(folder / name, out / name)
    stored = [v.dtype for v in load_tensors(folder / FILES[0]).values() if v.is_floating_point()]
    save_tensors(out / FILES[0], model.denoiser.state_dict(), stored[0] if stored else None)
    meta = load_json(out / FILES[2])
    meta["scroll_head_fit"] = fit
    save_json(out / FILES[2], meta)


def cached_drawn(path: Path | None, make, params: dict) -> dict[str, np.ndarray]:
    """Drawn windows from `path` if it holds ones drawn with the same `params`, else made and saved
    there (drawing takes minutes; a rerun or a resumed fit reuses them)."""
    key = json.dumps(params, sort_keys=True)
    if path is not None and path.exists():
        with np.load(path) as f:
            if str(f["params"]) == key:
                return {k: f[k] for k in ("frames", "actions", "scrolls")}
    windows = make()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, params=key, **windows)
        os.replace(tmp, path)
    return windows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="checkpoints", help="world-model checkpoint folder")
    ap.add_argument("--data", required=True, help="episodes directory with the low-res cache (and split.json, "
                    "unless --test-data is given)")
    ap.add_argument("--test-data", help="episodes directory to measure on; then every episode of --data is trained on")
    ap.add_argument("--out", required=True, help="folder for the checkpoint with the fitted head")
    ap.add_argument("--max-episodes", type=int, default=0,
                    help="train on every k-th episode in name order, k the smallest giving at most this many (0: all)")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--drawn-windows", type=int, default=0,
                    help="windows of training episodes whose frames the denoiser draws (0: real frames only)")
    ap.add_argument("--drawn-steps", type=int, default=12, help="frames drawn per window after its real context")
    ap.add_argument("--drawn-share", type=float, default=0.5, help="share of each batch from the drawn windows")
    ap.add_argument("--sampler", default="game", help="sampler preset that draws them (config/sampler)")
    ap.add_argument("--eval-windows", type=int, default=200, help="held-out windows of 15 steps measured on")
    ap.add_argument("--cache", help="folder that keeps the drawn windows for reruns")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.checkpoint)
    if not (folder / FILES[2]).exists():
        sys.exit(f"error: {folder}: no world-model checkpoint here (expected {', '.join(FILES)})")
    if not 0 <= args.drawn_share <= 1 or args.drawn_windows < 0 or args.drawn_steps < 1:
        sys.exit("error: --drawn-share must be in [0, 1], --drawn-windows >= 0 and --drawn-steps >= 1")
    try:
        if args.test_data:
            train_paths = sorted(Path(args.data).glob("*.hdf5"))
            test_paths = sorted(Path(args.test_data).glob("*.hdf5"))
        else:
            train_paths, test_paths = load_split(args.data)
        if args.max_episodes and len(train_paths) > args.max_episodes:
            train_paths = train_paths[::-(-len(train_paths) // args.max_episodes)]
        model, meta, kept = load_keeping_body(folder)
        sampler_cfg = load_sampler(args.sampler)
    except (OSError, ValueError, KeyError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    if not test_paths:
        sys.exit(f"error: {args.test_data or args.data}: no test episodes to measure on")
    print(f"{folder}: scroll head {'kept' if kept else 'does not match the code: starting fresh'}")
    c, cache = model.context, Path(args.cache) if args.cache else None
    test_dir = args.test_data or args.data
    try:
        test = real_windows(load_lowres_episodes(test_paths, test_dir), c + 15, args.eval_windows, seed=0)
        train_eps = load_lowres_episodes(train_paths, args.data)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    sets = {"real frames": test}
    den_file = folder / FILES[0]           # drawn windows are reused only for the same weights
    weights = {"checkpoint": str(den_file.resolve()), "mtime_ns": den_file.stat().st_mtime_ns}
    if args.drawn_windows:
        p = {**weights, "episodes": str(Path(test_dir).resolve()), "windows": args.eval_windows, "sampler": args.sampler}
        sets["drawn frames"] = cached_drawn(cache and cache / "test_drawn.npz",
                                            lambda: draw_windows(model, test, c, sampler_cfg, seed=1), p)
    before = {name: held_out_accuracy(model, w) for name, w in sets.items()}
    print("held out before:", json.dumps(before))
    drawn = None
    if args.drawn_windows:
        p = {**weights, "episodes": str(Path(args.data).resolve()), "max_episodes": args.max_episodes,
             "windows": args.drawn_windows, "steps": args.drawn_steps, "sampler": args.sampler}
        drawn = cached_drawn(cache and cache / "train_drawn.npz", lambda: draw_windows(
            model, real_windows(train_eps, c + args.drawn_steps, args.drawn_windows, seed=2), c, sampler_cfg, seed=3), p)
    sampler = SegmentSampler(train_eps, c, seed=1)
    rng = np.random.default_rng(4)
    n_drawn = round(args.drawn_share * args.batch) if drawn is not None else 0
    den = model.denoiser
    head = den.scroll_head
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    amp = autocast_dtype(torch.device("cpu"))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.05)
    bar = tqdm(range(args.steps), desc="fit scroll head", unit="step")
    for _ in bar:
        b = sampler.sample(args.batch - n_drawn)
        if n_drawn:
            d = context_batch(drawn, n_drawn, c, rng)
            b = {k: torch.cat([b[k], d[k].to(b[k].dtype)]) for k in d}
        obs, _ = den.noise_context(to_model(b["obs"]))
        with autocast(torch.device("cpu"), amp):
            loss, acc = den.scroll_loss(obs, b["act"], b["scroll"], b["past_scroll"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}", acc=f"{acc.item():.2f}")
    model.eval()
    after = {name: held_out_accuracy(model, w) for name, w in sets.items()}
    print("held out after:", json.dumps(after))
    fit = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "held_out_before": before, "held_out_after": after}
    if n_drawn:
        fit.update(drawn_windows=args.drawn_windows, drawn_steps=args.drawn_steps, drawn_share=args.drawn_share,
                   sampler=args.sampler)
    write_fitted(folder, Path(args.out), model, fit)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
