"""The world model: scroll head + denoiser (60x64) + upsampler (240x256), one autoregressive step.

One step, given the last 4 low-res frames, the last full-res frame, the actions (the last one is
being pressed now) and the 3 past scrolls:
  1. k = scroll_head(...)                          the camera scroll of this step
  2. prior_low = shift(last low-res frame, k);      residual ~ sampler(denoiser)
     next_low = prior_low + residual
  3. next_full = upsampler(shift(last full frame, k), next_low)
  4. if the sampler asks for it, steps 2-3 again for a frame that loses or doubles the last frame's Mario
     or whose Mario the camera pushed back (then with the camera moved by as much as he moved)
  5. if the sampler asks for it and the checkpoint has a tile book, cells snapped onto the real game's tiles
     (the whole frame, or only the HUD's), the HUD's clock counting down where the caller runs one
  6. if the checkpoint has an end model, P(the game would end the episode with this step)
The checkpoint is a folder: denoiser.safetensors, upsampler.safetensors, model.json (and, optional,
end_model.safetensors and tiles.safetensors).
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from smbwm.models.denoiser import Denoiser, DenoiserConfig
from smbwm.models.end_model import EndModel, EndModelConfig
from smbwm.models.hud_clock import start_state, tick
from smbwm.models.mario_sprite import count_marios, mario_centres
from smbwm.models.motion import HUD_ROWS, apply_scroll
from smbwm.models.sampler import Generators, SamplerConfig, batch_rows
from smbwm.models.tiles import TileBook
from smbwm.models.upsampler import Upsampler, UpsamplerConfig
from smbwm.utils.checkpoint import CheckpointError, load_json, load_tensors, save_json, save_tensors
from smbwm.utils.device import autocast
from smbwm.utils.paths import CHECKPOINTS

FORMAT = "smb-world-model/checkpoint"
FILES = ("denoiser.safetensors", "upsampler.safetensors", "model.json")
END_FILE = "end_model.safetensors"      # optional (scripts/train_end_model.py)
TILES_FILE = "tiles.safetensors"        # optional (scripts/build_tile_book.py)


def to_model(frames: np.ndarray | torch.Tensor, device=None) -> torch.Tensor:
    """(..., H, W, 3) uint8 -> (..., 3, H, W) float in [-1, 1]."""
    t = torch.as_tensor(np.asarray(frames)).to(device)
    return t.movedim(-1, -3).float().div(127.5).sub(1)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8."""
    return frames.float().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).movedim(-3, -1).cpu().numpy()


@dataclass
class StepOutput:
    low: torch.Tensor        # (B, 3, 60, 64)
    full: torch.Tensor       # (B, 3, 240, 256)
    scroll: torch.Tensor     # (B,) int
    timings_ms: dict
    redraws: int = 0         # frames drawn again because they lost or doubled the last frame's Mario
    marios: np.ndarray | None = None   # (B,) sharp Marios in each kept frame (None: the sampler does not check)
    end_prob: np.ndarray | None = None  # (B,) P(the game would end the episode here) (None: no end model)
    # (B, 3, 240, 256) the frame to show: `full` snapped onto the tile book (sampler.display_snap), or
    # `full` itself. The next step continues from `full`, so the snap never changes what the dream does.
    shown: torch.Tensor | None = None
    clock: np.ndarray | None = None     # (B, 2) the HUD clock's states after this step (models.hud_clock), if run

    def __post_init__(self):
        if self.shown is None:
            self.shown = self.full


def count_lost_steps(lost_steps: np.ndarray, marios: np.ndarray | None) -> np.ndarray:
    """(B,) drawn frames in a row without Mario, updated with a step's Mario counts (StepOutput.marios)."""
    if marios is None:
        return lost_steps
    return np.where(np.asarray(marios) > 0, 0, np.asarray(lost_steps) + 1)


class WorldModel(nn.Module):
    def __init__(self, denoiser: DenoiserConfig, upsampler: UpsamplerConfig):
        super().__init__()
        self.denoiser = Denoiser(denoiser)
        self.upsampler = Upsampler(upsampler)
        self.end_model: EndModel | None = None
        self.tiles: TileBook | None = None

    @property
    def context(self) -> int:
        return self.denoiser.cfg.context

    @torch.no_grad()
    def step(self, obs: torch.Tensor, last_full: torch.Tensor, act: torch.Tensor, past_scroll: torch.Tensor,
             sampler: SamplerConfig, amp_dtype: torch.dtype | None = None, generator: Generators = None,
             scroll: torch.Tensor | None = None, lost_steps: np.ndarray | None = None,
             clock: np.ndarray | None = None) -> StepOutput:
        """obs (B,context,3,60,64), last_full (B,3,240,256) in [-1,1]; act (B,context,6) multi-hot;
        past_scroll (B,context-1). `scroll` forces the camera scroll (evaluation with real scrolls).
        lost_steps (B,): drawn frames in a row, up to the last one, without Mario (count_lost_steps);
        None rescues a lost Mario however long he has been gone (sampler.mario_rescue_steps needs it).
        clock (B, 2): the HUD clock's states (start_clock); the HUD snap shows them one step on."""
        dev = obs.device
        times, t0 = {}, time.perf_counter()
        with autocast(dev, amp_dtype):
            follow = scroll is None and sampler.camera_follow > 0        # a forced camera stays as forced
            if scroll is None:
                scroll = self.denoiser.predict_scroll(obs, act, past_scroll)
            low = self.denoiser.sample_next(obs, act, scroll, sampler, generator)
            times["denoiser"] = (time.perf_counter() - t0) * 1e3
            t1 = time.perf_counter()
            full = self.upsampler(self.shift_full(last_full, scroll, sampler.prior_fill), low, generator=generator).float()
            times["upsampler"] = (time.perf_counter() - t1) * 1e3
            redraws, marios, centres = 0, None, None
            if sampler.mario_retries > 0:
                t2 = time.perf_counter()
                low, full, redraws, centres = self._redraw_marios(low, full, obs, last_full, act, scroll, sampler,
                                                                  generator, lost_steps)
                marios = np.array([len(c) for c in centres], np.int64)
                times["mario_check"] = (time.perf_counter() - t2) * 1e3
            if follow:
                t5 = time.perf_counter()
                centres = centres if centres is not None else mario_centres(to_uint8(full))
                low, full, scroll, followed = self._follow_mario(low, full, obs, last_full, act, scroll, sampler,
                                                                 generator, centres)
                redraws += followed
                times["camera_follow"] = (time.perf_counter() - t5) * 1e3
        shown = None
        if clock is not None and self.tiles is not None and self.tiles.clock is not None:
            clock = tick(clock, self.tiles.clock)
        else:
            clock = None
        values = None if clock is None else clock[:, 0]
        if (sampler.tile_snap > 0 or sampler.hud_snap > 0 or sampler.display_snap > 0) and self.tiles is not None:
            t4 = time.perf_counter()
            if sampler.tile_snap > 0:
                full, _ = self.tiles.snap(full, sampler.tile_snap, centres, last=last_full, clock=values)
            elif sampler.hud_snap > 0:
                full, _ = self.tiles.snap(full, sampler.hud_snap, centres, rows=HUD_ROWS, last=last_full, clock=values)
            if sampler.display_snap > 0 and sampler.tile_snap == 0:
                shown, _ = self.tiles.snap(full, sampler.display_snap, centres)
            times["tiles"] = (time.perf_counter() - t4) * 1e3
        end = None
        if self.end_model is not None:
            t3 = time.perf_counter()
            end = self.end_model.end_prob(last_full, full).cpu().numpy()
            times["end_model"] = (time.perf_counter() - t3) * 1e3
        times["total"] = (time.perf_counter() - t0) * 1e3
        return StepOutput(low, full, scroll, times, redraws, marios, end, shown, clock)

    def start_clock(self, frames: torch.Tensor) -> np.ndarray | None:
        """frames (B,3,240,256) or (B,k,3,240,256): the real frame(s) a dream starts from, the last one last
        -> (B, 2) clock states for `step` (the last frame's clock, -1 where unreadable; with k frames, in
        step with the game's ticks), or None: the tile book does not know the game's clock."""
        if self.tiles is None or self.tiles.clock is None:
            return None
        seq = frames if frames.ndim == 5 else frames[:, None]
        values = self.tiles.read_clock(seq.flatten(0, 1)).reshape(seq.shape[:2])
        return start_state(values, self.tiles.clock)

    def _redraw_marios(self, low: torch.Tensor, full: torch.Tensor, obs: torch.Tensor, last_full: torch.Tensor,
                       act: torch.Tensor, scroll: torch.Tensor, sampler: SamplerConfig, generator,
                       lost_steps: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor, int, list]:
        """Draw again (same context and scroll, fresh noise) the frames of the batch that lose or double the
        Mario their last frame showed, up to sampler.mario_retries times; each keeps the draw whose
        count is closest to one (the first on ties). Where the last frame shows no Mario (a pit, a pipe,
        or a Mario the dream lost) a frame without exactly one is redrawn only sampler.mario_rescue times
        (at most mario_retries): a lost Mario can come back, and the game's own absences cost few draws;
        once he has been gone for more than sampler.mario_rescue_steps frames (lost_steps), not at all.
        Returns the kept low and full frames, the redraw count and each kept frame's Marios (mario_centres)."""
        centres = mario_centres(to_uint8(full))
        marios = np.array([len(c) for c in centres], np.int64)                       # (B,)
        off = np.abs(marios - 1)                                                     # 0 = one Mario
        budget = np.full(len(off), sampler.mario_retries)
        if off.any():                                # the last frame is counted only when a draw fails
            rescue = np.full(len(off), min(sampler.mario_rescue, sampler.mario_retries))
            if lost_steps is not None and sampler.mario_rescue_steps > 0:
                rescue[np.asarray(lost_steps) > sampler.mario_rescue_steps] = 0
            lost = count_marios(to_uint8(last_full)) == 0
            budget[lost] = rescue[lost]
        redraws = 0
        for attempt in range(int(budget.max(initial=0))):
            idx = np.flatnonzero((off > 0) & (budget > attempt))
            if len(idx) == 0:
                break
            i = torch.as_tensor(idx, device=obs.device)
            g = batch_rows(generator, idx)
            low2 = self.denoiser.sample_next(obs[i], act[i], scroll[i], sampler, g)
            full2 = self.upsampler(self.shift_full(last_full[i], scroll[i], sampler.prior_fill), low2, generator=g).float()
            centres2 = mario_centres(to_uint8(full2))
            marios2 = np.array([len(c) for c in centres2], np.int64)
            off2 = np.abs(marios2 - 1)
            better = off2 < off[idx]
            if better.any():
                b = torch.as_tensor(better, device=obs.device)
                low, full = low.clone(), full.clone()
                low[i[b]], full[i[b]] = low2[b].to(low.dtype), full2[b]
                off[idx[better]], marios[idx[better]] = off2[better], marios2[better]
                for j in np.flatnonzero(better):
                    centres[idx[j]] = centres2[j]
            redraws += len(idx)
        return low, full, redraws, centres

    def _follow_mario(self, low: torch.Tensor, full: torch.Tensor, obs: torch.Tensor, last_full: torch.Tensor,
                      act: torch.Tensor, scroll: torch.Tensor, sampler: SamplerConfig, generator,
                      centres: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Draw again the frames of the batch whose one Mario the camera pushed back: he stands more than
        sampler.camera_follow pixels left of the last frame's one Mario while the camera scrolled right. The
        redraw moves the camera by as much as Mario moved (the scroll less the push, at least 0), and is kept
        where it shows one Mario. `centres` (updated in place): each frame's Marios (mario_centres). Returns
        the frames, the scrolls and how many frames were drawn again."""
        k = scroll.cpu().numpy()
        cand = np.flatnonzero((k > 0) & np.array([len(c) == 1 for c in centres]))
        if len(cand) == 0:
            return low, full, scroll, 0
        before = mario_centres(to_uint8(last_full[torch.as_tensor(cand, device=last_full.device)]))
        push = np.array([b[0][0] - centres[j][0][0] if len(b) == 1 else 0.0 for j, b in zip(cand, before)])
        pushed = push > sampler.camera_follow
        if not pushed.any():
            return low, full, scroll, 0
        idx = cand[pushed]
        i = torch.as_tensor(idx, device=obs.device)
        k2 = torch.as_tensor(np.maximum(k[idx] - np.round(push[pushed]), 0), dtype=scroll.dtype, device=scroll.device)
        g = batch_rows(generator, idx)
        low2 = self.denoiser.sample_next(obs[i], act[i], k2, sampler, g)
        full2 = self.upsampler(self.shift_full(last_full[i], k2, sampler.prior_fill), low2, generator=g).float()
        low, full, scroll = low.clone(), full.clone(), scroll.clone()
        for n, (j, found) in enumerate(zip(idx, mario_centres(to_uint8(full2)))):
            if len(found) == 1:
                low[j], full[j], scroll[j], centres[j] = low2[n].to(low.dtype), full2[n], k2[n], found
        return low, full, scroll, len(idx)

    def shift_full(self, frames: torch.Tensor, scroll: torch.Tensor, fill: str = "") -> torch.Tensor:
        """The upsampler's prior: full-res frames (B,3,240,256) moved by the scroll, revealed strip
        filled as `fill` says ("": as the denoiser's low-res prior is, as in training)."""
        return apply_scroll(frames, scroll, fill=fill or self.denoiser.cfg.reveal_fill)

    # --- checkpoint folder ---
    def save(self, folder: str | Path, meta: dict | None = None, dtype: torch.dtype | None = None) -> Path:
        folder = Path(folder)
        save_tensors(folder / FILES[0], self.denoiser.state_dict(), dtype)
        save_tensors(folder / FILES[1], self.upsampler.state_dict(), dtype)
        meta = {**(meta or {})}
        meta.pop("end_model", None)
        if self.end_model is not None:
            save_tensors(folder / END_FILE, self.end_model.state_dict(), dtype)
            meta["end_model"] = asdict(self.end_model.cfg)
        meta.pop("tiles", None)
        if self.tiles is not None:
            save_tensors(folder / TILES_FILE, self.tiles.state_dict())
            meta["tiles"] = {"count": len(self.tiles)}
        save_json(folder / FILES[2], {"format": FORMAT, "version": 1, "denoiser": asdict(self.denoiser.cfg),
                                      "upsampler": asdict(self.upsampler.cfg), **meta})
        return folder

    @classmethod
    def load(cls, path: str | Path, device="cpu") -> tuple["WorldModel", dict]:
        """Load a checkpoint folder (or any file inside it); CheckpointError on any problem."""
        folder = Path(path)
        folder = folder.parent if folder.is_file() else folder
        hint = "train one with `python src/main.py` (see README) or pass checkpoint=<folder>"
        if not folder.is_dir() or not (folder / FILES[2]).exists():
            raise CheckpointError(f"{folder}: no world-model checkpoint here (expected {', '.join(FILES)}); {hint}")
        meta = load_json(folder / FILES[2])
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{folder / FILES[2]}: not a {FORMAT} file; {hint}")
        try:
            model = cls(DenoiserConfig(**meta["denoiser"]), UpsamplerConfig(**meta["upsampler"]))
            parts = [(FILES[0], model.denoiser), (FILES[1], model.upsampler)]
            if meta.get("end_model") is not None:
                model.end_model = EndModel(EndModelConfig(**meta["end_model"]))
                parts.append((END_FILE, model.end_model))
            for name, sub in parts:
                sd = {k: v.float() for k, v in load_tensors(folder / name).items()}
                sub.load_state_dict(sd)
            if meta.get("tiles") is not None:
                model.tiles = TileBook(**load_tensors(folder / TILES_FILE))
        except (TypeError, KeyError, RuntimeError, ValueError) as e:
            raise CheckpointError(f"{folder}: weights do not match model.json ({str(e).splitlines()[0][:200]})") from None
        return model.to(device).eval(), meta


def add_to_checkpoint(folder: str | Path, out: str | Path, name: str, tensors: dict[str, torch.Tensor], key: str,
                      value: dict, report: dict, dtype: torch.dtype | None = None) -> Path:
    """Write an optional part (the end model, the tile book) into a checkpoint: `out` is the checkpoint
    folder itself, or a new folder that gets a copy of it first. The part's file `name`, its entry
    `key` in model.json, and its figures as `<stem>_report.json`. CheckpointError on a bad model.json."""
    import shutil
    folder, out = Path(folder), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if out.resolve() != folder.resolve():
        for f in (*FILES, END_FILE, TILES_FILE):
            if (folder / f).exists():
                shutil.copy2(folder / f, out / f)
    meta = load_json(out / FILES[2])
    save_tensors(out / name, tensors, dtype)
    meta[key] = value
    save_json(out / FILES[2], meta)
    report_path = out / f"{name.split('.')[0]}_report.json"
    save_json(report_path, report)
    return report_path


def resolve_checkpoint(path: str | Path | None) -> Path:
    """A checkpoint folder from: None (the shipped one), a folder, a file in it, or a training run dir."""
    p = Path(path) if path else CHECKPOINTS
    if p.is_file():
        p = p.parent
    latest = p / "checkpoints" / "latest"          # a Hydra run directory of src/main.py
    if not (p / "model.json").exists() and latest.exists():
        p = p / "checkpoints" / latest.read_text().strip()
    elif not (p / "model.json").exists() and (p / "latest").exists():
        p = p / (p / "latest").read_text().strip()
    return p
