"""Fidelity report of a world model on held-out real episodes.

    python src/evaluate.py [checkpoint=<dir or file>] data.dir=<episodes dir> [out=<report.json>]

Writes the JSON report, a PNG strip and a GIF of real vs dream (open-loop, real actions).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

# No OMP_WAIT_POLICY=PASSIVE here (unlike main.py): the speed row must be the player's speed, and at batch 1
# sleeping OpenMP waits cost a large share of a frame (docs/benchmarks.md).

import hydra
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from smbwm.utils.config_errors import ConfigError, config_error


def register_defaults() -> None:
    """The defaults of `eval`, `playability` and `sampler` are their dataclasses' fields, written once
    there (config/evaluate.yaml and sampler/ hold only what differs). Needed before composing
    config/evaluate.yaml."""
    from smbwm.evaluation.fidelity import EvalConfig
    from smbwm.evaluation.playability import PlayabilityConfig
    from smbwm.models.sampler import SamplerConfig
    from smbwm.utils.config_defaults import register_dataclass_defaults
    register_dataclass_defaults([("eval", "dataclass", EvalConfig), ("playability", "dataclass", PlayabilityConfig),
                                 ("sampler", "dataclass", SamplerConfig)])


register_defaults()


def episode_sets(cfg: DictConfig) -> dict[str, list[Path]]:
    from smbwm.data.episode import EpisodeError, check_episodes, list_episodes
    from smbwm.data.split import SplitError, episodes_for, has_split
    sets = {}
    try:
        d = Path(cfg.data.dir)
        sets["heldout_episodes" if has_split(d, cfg.data.split) else "episodes"] = episodes_for(d, "test", cfg.data.split)
        for name, extra in (cfg.extra_dirs or {}).items():
            if extra and Path(extra).is_dir():
                sets[name] = list_episodes(extra)
    except (EpisodeError, SplitError) as e:
        config_error(f"{e} (collect data first: see README, or pass data.dir=<episodes dir>)")
    try:
        check_episodes([p for v in sets.values() for p in v])      # every bad file named at once
    except EpisodeError as e:
        config_error(str(e))
    sets = {k: v for k, v in sets.items() if v}
    if not sets:
        config_error(f"no episodes to evaluate on in {cfg.data.dir}")
    return sets


def collect_commands(sets: dict[str, list[Path]]) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Per set, the commands that collected its episodes (each file's `collect_command`, as collect.py
    stores it), so the report says how to remake its data; and per set, how many files record none."""
    from smbwm.data.episode import read_episode
    commands, unknown = {}, {}
    for name, paths in sets.items():
        found = [read_episode(p, frames=False).attrs.get("collect_command") for p in paths]
        commands[name] = sorted({c for c in found if c})
        if None in found or "" in found:
            unknown[name] = sum(not c for c in found)
    return commands, unknown


def check_eval(ecfg, denoising_steps) -> None:
    """Counts that would crash later (or drop a report section silently) stop here with one line."""
    def integer(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)
    for name, low in (("next_frame_samples", 0), ("rollouts", 0), ("batch_size", 1), ("speed_steps", 1), ("seed", 0)):
        v = getattr(ecfg, name)
        if not integer(v) or v < low:
            config_error(f"eval.{name} must be an integer >= {low}, got {v!r}")
    if not ecfg.horizons or not all(integer(h) and h >= 1 for h in ecfg.horizons):
        config_error(f"eval.horizons must be a non-empty list of integers >= 1, got {ecfg.horizons!r}")
    if denoising_steps is not None and (not integer(denoising_steps) or denoising_steps < 1):
        config_error(f"denoising_steps must be null or an integer >= 1, got {denoising_steps!r}")


def check_playability(p) -> None:
    def integer(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)
    for name, low in (("windows", 0), ("window_steps", 1), ("spawn_steps", 0), ("jump_every", 1), ("jump_hold", 0),
                      ("stall_steps", 1), ("early_steps", 1), ("min_travel_px", 0), ("late_frames", 0)):
        v = getattr(p, name)
        if not integer(v) or v < low:
            config_error(f"playability.{name} must be an integer >= {low}, got {v!r}")
    if not all(integer(h) and 1 <= h <= p.window_steps for h in p.psnr_steps):
        config_error(f"playability.psnr_steps must be steps in 1..window_steps ({p.window_steps}), got {p.psnr_steps!r}")


def check_horizons(ecfg, context: int, sets: dict[str, list[Path]]) -> None:
    """A horizon no episode is long enough for would silently drop the rollout section."""
    from smbwm.data.episode import episode_length
    need = context + max(ecfg.horizons)
    longest = max(episode_length(p) + 1 for paths in sets.values() for p in paths)
    if ecfg.rollouts and longest < need:
        config_error(f"eval.horizons: a rollout of {max(ecfg.horizons)} steps needs an episode of {need} frames "
                     f"({context} context frames first); the longest here has {longest}")


def pictures(pics: dict, out: Path, gif: bool) -> list[Path]:
    """PNG: rows real / dream at horizons 1, 5, 15, 30 for 3 rollouts; GIF: real | dream of rollout 0."""
    from PIL import Image
    dream, real = pics["dream"], pics["real"]
    hs = [h for h in (1, 5, 15, 30) if h <= dream.shape[1]]
    sep = np.full((240, 4, 3), 255, np.uint8)
    rows = []
    for i in range(min(3, len(dream))):
        for src in (real, dream):
            rows.append(np.concatenate(sum([[src[i, h - 1], sep] for h in hs], [])[:-1], 1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    png = out.with_suffix(".png")
    Image.fromarray(np.concatenate(rows[:-1], 0)).save(png)
    files = [png]
    if gif:
        frames = [Image.fromarray(np.concatenate([real[0, t], sep, dream[0, t]], 1)) for t in range(dream.shape[1])]
        g = out.with_suffix(".gif")
        frames[0].save(g, save_all=True, append_images=frames[1:], duration=1000 // 15, loop=0)
        files.append(g)
    return files


def minute_gif(minute: dict, path: Path, every: int = 2) -> Path:
    """Hands-on play from a spawn, dream | real game at half size, every `every`-th step (the real side
    stays on its last frame once the game ends: Mario died or the level ended)."""
    from PIL import Image
    dream, real = minute["dream"], minute["real"]
    sep = np.full((120, 2, 3), 255, np.uint8)
    frames = []
    for t in range(0, len(dream), every):
        pair = [dream[t, ::2, ::2], sep, real[min(t, len(real) - 1), ::2, ::2]]
        frames.append(Image.fromarray(np.concatenate(pair, 1)))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=1000 * every // 15, loop=0, optimize=True)
    return path


def spawn_sheet(sheet: dict, path: Path) -> Path:
    """Contact sheet of the hands-on minutes: a row per spawn, the dream at each moment, labelled with
    the spawn and the second of play."""
    from PIL import Image, ImageDraw
    rows, label_h, gap = [], 12, 4
    for name, moments in sheet.items():
        pics = [np.pad(f, ((label_h, 0), (0, gap), (0, 0)), constant_values=255) for f in moments.values()]
        row = Image.fromarray(np.concatenate(pics, 1))
        draw = ImageDraw.Draw(row)
        for i, t in enumerate(moments):
            draw.text((i * (256 + gap) + 2, 0), f"{name}: {t / 15:.0f} s (step {t})", fill=(0, 0, 0))
        rows.append(np.asarray(row))
    Image.fromarray(np.concatenate(rows, 0)).save(path)
    return path


def run(cfg: DictConfig) -> dict:
    from smbwm.data.spawn import list_spawns
    from smbwm.models.world_model import resolve_checkpoint
    from smbwm.utils.paths import SPAWNS
    from smbwm.evaluation.fidelity import Rollout, evaluate_split, measure_speed, pick_segments
    from smbwm.evaluation.long_play import spawn_playability, window_playability
    from smbwm.evaluation.resume import FinishedSections, run_key
    from smbwm.models.world_model import WorldModel
    from smbwm.utils.checkpoint import CheckpointError
    from smbwm.utils.device import autocast_dtype, pick_device, prepare_module
    try:
        ecfg = instantiate(cfg.eval, _convert_="all")
        pcfg = instantiate(cfg.playability, _convert_="all")
        sampler = instantiate(cfg.sampler, _convert_="all")
        device = pick_device(cfg.device)
    except Exception as e:  # noqa: BLE001 - one line for any bad setting
        config_error(f"bad config: {str(e).splitlines()[0]}")
    check_eval(ecfg, cfg.denoising_steps)
    check_playability(pcfg)
    if cfg.reference_only and pcfg.late_frames < 1:
        config_error("reference_only=true plays only the game's late-input reference: playability.late_frames must be >= 1")
    from smbwm.models.motion import REVEAL_FILLS
    if sampler.prior_fill not in ("", *REVEAL_FILLS):
        config_error(f"sampler.prior_fill must be empty (the checkpoint's reveal_fill) or one of {', '.join(REVEAL_FILLS)}, "
                     f"got {sampler.prior_fill!r}")
    if cfg.denoising_steps:
        sampler.num_steps = int(cfg.denoising_steps)
    ckpt = resolve_checkpoint(cfg.checkpoint)
    try:
        model, meta = WorldModel.load(ckpt, device)
    except CheckpointError as e:
        config_error(str(e))
    model = prepare_module(model, device)
    amp = autocast_dtype(device)
    sets = episode_sets(cfg)
    check_horizons(ecfg, model.context, sets)
    out = Path(cfg.out) if cfg.out else ckpt / "report.json"
    settings = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in ("out", "gif", "wandb", "resume")}
    store = FinishedSections(out.with_name(out.stem + ".partial"), run_key(settings, ckpt, sets), cfg.resume)
    if store.done:
        print(f"evaluate: continuing the run in {store.folder}; finished before: {', '.join(store.done)}", file=sys.stderr)
    seconds = []

    def section(name: str, make):
        """A section's (figures, pictures): kept from the run that died, or made now and kept."""
        kept = store.get(name)
        if kept is not None:
            seconds.append(kept[2])
            return kept[0], kept[1]
        t = time.time()
        figures, pics = make()
        seconds.append(time.time() - t)
        store.put(name, figures, pics, seconds[-1])
        return figures, pics

    report = {"checkpoint": str(ckpt), "training_step": meta.get("step"), "training_frames": meta.get("frames"),
              "sampler": {k: None if v == float("inf") else v for k, v in dataclasses.asdict(sampler).items()},  # JSON has no inf
              "sets": {}}
    pics_first = None
    dream = not cfg.reference_only
    for name, paths in sets.items():
        rep, pics = section(f"{name}/fidelity", lambda: evaluate_split(model, sampler, device, amp, paths, ecfg, name)) \
            if ecfg.next_frame_samples > 0 and dream else ({}, {})
        if pcfg.windows > 0:
            def windows():
                roll = Rollout(model, sampler, device, amp, ecfg.seed)
                return window_playability(roll, paths, pcfg, np.random.default_rng(ecfg.seed), name,
                                          ecfg.batch_size, dream), None
            rep["playability"] = section(f"{name}/playability", windows)[0]
        report["sets"][name] = rep
        pics_first = pics_first or pics or None
    minute = None
    spawns = list_spawns(cfg.spawn_dir or SPAWNS) if pcfg.spawn_steps > 0 else []
    if spawns:
        report["playability_spawns"], minute = section("spawns", lambda: spawn_playability(
            Rollout(model, sampler, device, amp, ecfg.seed), spawns, pcfg, dream))
    t = time.time()
    seg = pick_segments(next(iter(sets.values())), model.context + ecfg.speed_steps, 1,
                        np.random.default_rng(ecfg.seed), "speed") if dream else []
    if seg:
        report["speed"] = measure_speed(model, sampler, device, seg[0], ecfg.speed_steps, ecfg.speed_backend)
    report["eval_seconds"] = round(sum(seconds) + time.time() - t, 1)     # a continued run: both runs' sections
    report["episodes"], unknown = collect_commands(sets)
    if unknown:
        report["episodes_without_command"] = unknown
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    store.remove()
    files = pictures(pics_first, out, cfg.gif) if pics_first else []
    if minute and cfg.gif and pcfg.minute_gif:
        files.append(minute_gif(minute, out.with_name(out.stem + "_minute.gif")))
    if minute and cfg.gif:
        files.append(spawn_sheet(minute["sheet"], out.with_name(out.stem + "_spawns.png")))
    print(json.dumps(report, indent=1))
    print(f"wrote {out}" + "".join(f", {f}" for f in files))
    if cfg.wandb.mode != "disabled":
        import wandb
        run = wandb.init(project=cfg.wandb.project, mode=cfg.wandb.mode, job_type="evaluate",
                         dir=str(out.parent), config=OmegaConf.to_container(cfg, resolve=True))
        flat = {f"{s}/{k}": v for s, r in report["sets"].items() for k, v in _flatten(r).items()}
        run.log({**flat, **{f"speed/{k}": v for k, v in _flatten(report.get("speed", {})).items()}})
        for f in files:
            run.log({f.stem + f.suffix.replace(".", "_"): wandb.Image(str(f)) if f.suffix == ".png" else wandb.Video(str(f))})
        run.finish()
    return report


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and v is not None:
            out[f"{prefix}{k}"] = v
    return out


@hydra.main(config_path="../config", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from smbwm.data.episode import EpisodeError
    try:
        run(cfg)
    except ConfigError:
        sys.exit(2)
    except EpisodeError as e:           # frame data that fails only when a segment reads it (bit rot)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
