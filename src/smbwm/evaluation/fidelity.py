"""How faithful is the dream: next-frame, open-loop rollouts, controllability, speed.

Every number sits next to the copy-last-frame baseline on the same frames.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from smbwm import actions as A
from smbwm.data.episode import episode_length, read_episode, read_frames
from smbwm.data.lowres import downsample
from smbwm.evaluation.metrics import agreement_by_step, controllability, psnr_per_frame, ssim
from smbwm.evaluation.playability import PlayabilityConfig
from smbwm.models.mario_sprite import count_marios, find_mario
from smbwm.models.motion import estimate_scrolls
from smbwm.models.openvino_runtime import apply_backend, resolve_backend
from smbwm.models.world_model import WorldModel, count_lost_steps, to_model, to_uint8
from smbwm.utils.device import autocast, autocast_dtype, runtime_precision


@dataclass
class EvalConfig:
    next_frame_samples: int = 256
    rollouts: int = 16
    horizons: list[int] = field(default_factory=lambda: [1, 5, 15, 30])
    real_scroll_rollouts: bool = True   # the rollouts again with the real camera scroll forced (camera vs content)
    batch_size: int = 16
    speed_steps: int = 30
    speed_backend: str = "auto"         # what runs the speed measurement: the player's default (auto) | torch | openvino
    seed: int = 0


@dataclass
class Segment:
    frames: np.ndarray        # (L, 240, 256, 3) real frames
    actions: np.ndarray       # (L-1,) actions, actions[i] taken at frames[i]
    scrolls: np.ndarray       # (L-1,) image-estimated scrolls
    info: tuple[np.ndarray, ...] | None = None   # (L,) x_pos, camera_x, y_pos of the game (with_info)
    source: tuple[Path, int] | None = None       # the episode file and its frame index of frames[0]
    # which run of its set this is (the order pick_segments drew it in): its random draws are seeded by it,
    # so a run draws the same noise whatever else shares its batch and whatever sampler the others use
    key: int = 0


def pick_segments(paths, length: int, count: int, rng: np.random.Generator, desc: str,
                  with_info: bool = False) -> list[Segment]:
    """`count` random windows of `length` frames from episodes long enough; reads only those frames
    (and the game's x_pos, camera_x, y_pos with_info)."""
    lengths = {p: episode_length(p) + 1 for p in paths}
    ok = [p for p in paths if lengths[p] >= length]
    if not ok:
        return []
    picks = sorted((ok[i], int(rng.integers(lengths[ok[i]] - length + 1))) for i in rng.integers(len(ok), size=count))
    out = []
    for key, (p, t) in enumerate(tqdm(picks, desc=f"read {desc}", unit="segment", leave=False)):
        f = read_frames(p, slice(t, t + length))
        ep = read_episode(p, frames=False)
        info = tuple(np.asarray(ep.info[k][t:t + length]) for k in ("x_pos", "camera_x", "y_pos")) if with_info else None
        out.append(Segment(f, ep.actions[t:t + length - 1], estimate_scrolls(f), info, (Path(p), t), key))
    return out


class Rollout:
    """Runs the model autoregressively from real context on a batch of segments. Each segment draws its
    noise from its own generator, seeded by `seed` and its key: two samplers compared on the same runs
    start from the same noise in every run, and stay paired until they draw a run differently."""

    def __init__(self, model: WorldModel, sampler, device, amp, seed: int = 0):
        self.model, self.sampler, self.device, self.amp = model, sampler, device, amp
        self.mh = torch.tensor(A.MULTI_HOT_TABLE, dtype=torch.float32)
        self.seed = seed
        self.end_probs: np.ndarray | None = None   # (B, steps) of the last run: P(the game ends here), if an end model

    def run(self, segs: list[Segment], steps: int, real_scroll: bool = False,
            progress: str | None = None) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """Context = the first `c` frames of each segment; returns dream (B, steps, 240,256,3) and
        (B, steps, 60,64,3) uint8 and the per-step timings. real_scroll: the camera follows the real
        game (its image-estimated scrolls) instead of the scroll head. progress: a bar over the steps
        with this label (long runs: a minute from every spawn takes most of an hour on some CPUs)."""
        c, dev = self.model.context, self.device
        full = np.stack([s.frames for s in segs])                            # (B, L, H, W, 3)
        acts = np.stack([s.actions for s in segs])
        obs = to_model(downsample(full[:, :c]), dev)
        last = to_model(full[:, c - 1], dev)
        past = torch.as_tensor(np.stack([s.scrolls[:c - 1] for s in segs]), dtype=torch.long, device=dev)
        lost = count_lost_steps(np.zeros(len(segs), np.int64), count_marios(full[:, c - 1]))
        clock = self.model.start_clock(to_model(full[:, :c], dev))
        gens = [torch.Generator(dev).manual_seed(self.seed * 1_000_003 + s.key) for s in segs]
        outs_full, outs_low, times, ends = [], [], [], []
        for t in tqdm(range(steps), desc=progress, leave=False, disable=progress is None):
            a = self.mh[acts[:, t:t + c].astype(np.int64)].to(dev)                          # actions at frames t..t+c-1
            k = torch.as_tensor(np.array([s.scrolls[c - 1 + t] for s in segs]), dtype=torch.long, device=dev) \
                if real_scroll else None
            o = self.model.step(obs, last, a, past, self.sampler, self.amp, gens, scroll=k, lost_steps=lost,
                                clock=clock)
            lost, clock = count_lost_steps(lost, o.marios), o.clock
            obs = torch.cat([obs[:, 1:], o.low[:, None]], 1)
            last = o.full
            past = torch.cat([past[:, 1:], o.scroll[:, None].long()], 1)
            outs_full.append(to_uint8(o.shown))
            outs_low.append(to_uint8(o.low))
            times.append(o.timings_ms)
            ends.append(o.end_prob)
        self.end_probs = None if ends[0] is None else np.stack(ends, 1)
        return np.stack(outs_full, 1), np.stack(outs_low, 1), times

    @torch.no_grad()
    def scrolls_real_context(self, segs: list[Segment], steps: int) -> np.ndarray:
        """The scroll head's choice at each of `steps` steps given the real context (frames, past scrolls,
        actions) -> (B, steps) int: its controllability when the frames it reads do not drift."""
        c, dev = self.model.context, self.device
        low = to_model(downsample(np.stack([s.frames[:c - 1 + steps] for s in segs])), dev)   # (B, c-1+steps, 3,60,64)
        acts = np.stack([s.actions for s in segs])
        past = torch.as_tensor(np.stack([s.scrolls for s in segs]), dtype=torch.long, device=dev)
        out = []
        for t in range(steps):
            a = self.mh[acts[:, t:t + c].astype(np.int64)].to(dev)
            with autocast(dev, self.amp):
                out.append(self.model.denoiser.predict_scroll(low[:, t:t + c], a, past[:, t:t + c - 1]).cpu().numpy())
        return np.stack(out, 1)

    @torch.no_grad()
    def upsample_real(self, segs: list[Segment]) -> np.ndarray:
        """The upsampler alone on frame c: real last full frame, real scroll, real low-res frame ->
        (B, 240, 256, 3) uint8 (how much of the full-res error is the upsampler's)."""
        c, dev = self.model.context, self.device
        last = to_model(np.stack([s.frames[c - 1] for s in segs]), dev)
        low = to_model(downsample(np.stack([s.frames[c] for s in segs])), dev)
        k = torch.as_tensor(np.array([s.scrolls[c - 1] for s in segs]), dtype=torch.long, device=dev)
        with autocast(dev, self.amp):
            return to_uint8(self.model.upsampler(self.model.shift_full(last, k, self.sampler.prior_fill), low).float())


def _mario_drawn(found: dict[str, list]) -> dict:
    """Of the next frames where the game shows Mario, the share where the dream (and the upsampler
    alone, given the real low-res frame) draws him as a sprite within PlayabilityConfig.near_px of him."""
    near = PlayabilityConfig().near_px
    joined = {k: [np.concatenate(v) for v in zip(*batches)] for k, batches in found.items()}   # shown, x, y
    rs, rx, ry = joined["real"]
    out = {}
    for k, key in (("dream", "mario_drawn"), ("upsampler", "mario_drawn_upsampler_real_lowres")):
        s, x, y = joined[k]
        out[key] = float((s & (np.hypot(x - rx, y - ry) <= near))[rs].mean()) if rs.any() else None
    return out


def _batches(items, n):
    for i in range(0, len(items), n):
        yield items[i:i + n]


def evaluate_split(model, sampler, device, amp, paths, cfg: EvalConfig, name: str) -> tuple[dict, dict]:
    """Metrics on one set of episodes; also returns material for pictures."""
    rng = np.random.default_rng(cfg.seed)
    c = model.context
    roll = Rollout(model, sampler, device, amp, cfg.seed)
    # next frame, real context (teacher forcing)
    segs = pick_segments(paths, c + 1, cfg.next_frame_samples, rng, name)
    if not segs:
        return {"error": f"no episode has {c + 1} frames"}, {}
    pf, pl, cf, cl, sf, sfc, pu = [], [], [], [], [], [], []
    mario = {"real": [], "dream": [], "upsampler": []}           # is Mario drawn where the game has him
    for b in tqdm(list(_batches(segs, cfg.batch_size)), desc=f"next-frame {name}", leave=False):
        dream_full, dream_low, _ = roll.run(b, 1)
        real = np.stack([s.frames[c] for s in b])
        last = np.stack([s.frames[c - 1] for s in b])
        pf += list(psnr_per_frame(dream_full[:, 0], real))
        pl += list(psnr_per_frame(dream_low[:, 0], downsample(real)))
        cf += list(psnr_per_frame(last, real))
        cl += list(psnr_per_frame(downsample(last), downsample(real)))
        sf.append(ssim(dream_full[:, 0], real))
        sfc.append(ssim(last, real))
        up = roll.upsample_real(b)
        pu += list(psnr_per_frame(up, real))
        for k, frames in (("real", real), ("dream", dream_full[:, 0]), ("upsampler", up)):
            mario[k].append(find_mario(frames))
    rep = {"episodes": len(paths), "next_frame": {
        "samples": len(segs),
        "psnr_240x256": float(np.mean(pf)), "psnr_240x256_copy_last": float(np.mean(cf)),
        "psnr_60x64": float(np.mean(pl)), "psnr_60x64_copy_last": float(np.mean(cl)),
        "ssim_240x256": float(np.mean(sf)), "ssim_240x256_copy_last": float(np.mean(sfc)),
        "psnr_240x256_upsampler_real_lowres": float(np.mean(pu)),
        **_mario_drawn(mario)}}
    # open-loop rollouts with the real actions
    hmax = max(cfg.horizons)
    rsegs = pick_segments(paths, c + hmax, cfg.rollouts, rng, name)
    pics = {}
    if rsegs:
        dream_all, real_all, forced_all = [], [], []
        for b in tqdm(list(_batches(rsegs, cfg.batch_size)), desc=f"rollouts {name}", leave=False):
            dream, _, _ = roll.run(b, hmax)
            dream_all.append(dream)
            real_all.append(np.stack([s.frames[c:c + hmax] for s in b]))
        if cfg.real_scroll_rollouts:    # the same runs and noise, the camera forced: the difference is the camera's
            forced_all = [roll.run(b, hmax, real_scroll=True)[0] for b in
                          tqdm(list(_batches(rsegs, cfg.batch_size)), desc=f"real-scroll rollouts {name}", leave=False)]
        dream, real = np.concatenate(dream_all), np.concatenate(real_all)     # (N, hmax, H, W, 3)
        last = np.stack([s.frames[c - 1] for s in rsegs])
        rep["rollout"] = {"segments": len(rsegs), "psnr_240x256": {}, "psnr_240x256_copy_last": {},
                          "psnr_60x64": {}, "psnr_60x64_copy_last": {}}
        for h in cfg.horizons:
            r = rep["rollout"]
            r["psnr_240x256"][str(h)] = float(np.mean(psnr_per_frame(dream[:, h - 1], real[:, h - 1])))
            r["psnr_240x256_copy_last"][str(h)] = float(np.mean(psnr_per_frame(last, real[:, h - 1])))
            r["psnr_60x64"][str(h)] = float(np.mean(psnr_per_frame(downsample(dream[:, h - 1]), downsample(real[:, h - 1]))))
            r["psnr_60x64_copy_last"][str(h)] = float(np.mean(psnr_per_frame(downsample(last), downsample(real[:, h - 1]))))
        if forced_all:      # how much of the rollout error is the camera: the same rollouts, real scrolls forced
            forced = np.concatenate(forced_all)
            rep["rollout"]["psnr_240x256_real_scroll"] = {
                str(h): float(np.mean(psnr_per_frame(forced[:, h - 1], real[:, h - 1]))) for h in cfg.horizons}
        # controllability: scroll between consecutive frames, estimated from the images of each
        d_scroll = np.stack([estimate_scrolls(np.concatenate([last[i:i + 1], dream[i]])) for i in range(len(dream))])
        r_scroll = np.stack([estimate_scrolls(np.concatenate([last[i:i + 1], real[i]])) for i in range(len(real))])
        spans = [(a, min(b, hmax)) for a, b in ((1, 3), (4, 8), (9, 15), (16, 30)) if a <= hmax]
        rep["controllability"] = {**controllability(d_scroll.ravel(), r_scroll.ravel()),
                                  "direction_agreement_by_step": agreement_by_step(d_scroll, r_scroll, spans)}
        # the same steps with the real frames as context: the scroll head alone, without the dream's drift
        tf = np.concatenate([roll.scrolls_real_context(b, hmax) for b in _batches(rsegs, cfg.batch_size)])
        rep["controllability_real_context"] = controllability(tf.ravel(), r_scroll.ravel())
        pics = {"dream": dream, "real": real, "last": last}
    return rep, pics


def measure_speed(model, sampler, device, seg: Segment, steps: int, backend: str = "auto") -> dict:
    """Frames/s of the full pipeline at batch 1 in the play configuration (the player's backend: OpenVINO
    on a CPU where installed, else torch in fp32 on CPU, like the dream env), median over steps after a
    warm-up step. `model` itself is left as it is."""
    amp = None if device.type == "cpu" else autocast_dtype(device)
    if resolve_backend(backend, device) == "openvino":
        model = copy.deepcopy(model)
    backend = apply_backend(model, backend, device, reuse_deep=sampler.reuse_deep)
    if backend == "openvino":
        amp = None
    roll = Rollout(model, sampler, device, amp)
    roll.run([seg], 1)
    t0 = time.perf_counter()
    _, _, times = roll.run([seg], steps)
    wall = time.perf_counter() - t0
    med = {k: float(np.median([t[k] for t in times])) for k in times[0]}
    return {"fps": 1000.0 / med["total"], "fps_wall": steps / wall, "ms_per_stage_median": med,
            "batch": 1, "precision": runtime_precision(backend, amp), "denoising_steps": sampler.num_steps, "device": str(device),
            "threads": torch.get_num_threads(), "backend": backend}
