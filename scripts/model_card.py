"""Write checkpoints/README.md (the model card) from the checkpoint's model.json and evaluate's report.json.

    python scripts/model_card.py [--checkpoint checkpoints] [--cpu-hours H] [--notes FILE]

Every fidelity number in the card is copied from report.json (tests/test_shipped_model.py checks that
the card and the report agree), so the card can only say what `python src/evaluate.py` measured.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from smbwm.models.sampler import SamplerConfig
from smbwm.utils.paths import CHECKPOINTS, DEFAULT_SAMPLER


def fmt(v) -> str:
    return "—" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)


def sampler_line(s: dict) -> str:
    """The sampler settings of a report in words."""
    kind = "Heun" if s["order"] == 2 else "Euler"
    churn = f", churn {s['s_churn']:g} (fresh noise at each step)" if s.get("s_churn") else ""
    noise = f", context noise {s['context_noise']:g}" if s.get("context_noise") else ""
    r = s.get("mario_retries")
    if r:
        noise += f", a frame that loses or doubles the last frame's Mario redrawn up to {r} times"
        if s.get("mario_rescue"):
            n = min(s["mario_rescue"], r)
            noise += ", one without Mario after a frame without him " + ("once" if n == 1 else f"{n} times")
            if s.get("mario_rescue_steps"):
                noise += f" while he has been gone for at most {s['mario_rescue_steps']} frames"
    if s.get("camera_follow"):
        noise += (f", a frame whose Mario the camera pushed back more than {s['camera_follow']} px drawn again with the camera"
                  " moved by as much as he moved")
    if s.get("tile_snap"):
        noise += f", each frame's 8x8 cells snapped onto the tile book where at most {s['tile_snap']} of 64 pixels differ"
    elif s.get("hud_snap"):
        noise += f", the HUD's 8x8 cells snapped onto the tile book where at most {s['hud_snap']} of 64 pixels differ"
    if s.get("display_snap") and not s.get("tile_snap"):
        noise += (f", the frame shown snapped onto the tile book where at most {s['display_snap']} of 64 pixels differ"
                  " (the dream goes on from the frame as drawn)")
    if s.get("prior_fill") == "tile":
        noise += ", the strip the camera reveals in the upsampler's prior filled with whole tiles"
    elif s.get("prior_fill"):
        noise += f", the strip the camera reveals in the upsampler's prior filled by `{s['prior_fill']}`"
    if s["num_steps"] == 1:
        return f"1 {kind} step from sigma {s['sigma_max']:g}{churn}{noise}"
    return f"{s['num_steps']} {kind} steps, sigma {s['sigma_max']:g} -> {s['sigma_min']:g} -> 0{churn}{noise}"


def fidelity_table(report: dict) -> str:
    lines = ["| set | metric | dream | copy last frame |", "|---|---|---|---|"]
    for name, s in report["sets"].items():
        nf = s.get("next_frame", {})
        for res in ("240x256", "60x64"):
            lines.append(f"| {name} | next-frame PSNR {res} (dB) | {fmt(nf.get(f'psnr_{res}'))} | "
                         f"{fmt(nf.get(f'psnr_{res}_copy_last'))} |")
        lines.append(f"| {name} | next-frame SSIM 240x256 | {fmt(nf.get('ssim_240x256'))} | "
                     f"{fmt(nf.get('ssim_240x256_copy_last'))} |")
        if "psnr_240x256_upsampler_real_lowres" in nf:
            lines.append(f"| {name} | next-frame PSNR 240x256, upsampler alone on the real 60x64 frame (dB) | "
                         f"{fmt(nf['psnr_240x256_upsampler_real_lowres'])} | |")
        for key, what in (("mario_drawn", "the dream"), ("mario_drawn_upsampler_real_lowres", "the upsampler alone on the real 60x64 frame")):
            if nf.get(key) is not None:
                lines.append(f"| {name} | next frame: Mario drawn as a sprite near the game's, {what} | {fmt(nf[key])} | |")
        r = s.get("rollout", {})
        for h, v in r.get("psnr_240x256", {}).items():
            lines.append(f"| {name} | rollout PSNR 240x256 at {h} steps (dB) | {fmt(v)} | "
                         f"{fmt(r['psnr_240x256_copy_last'][h])} |")
        for h, v in r.get("psnr_240x256_real_scroll", {}).items():
            lines.append(f"| {name} | rollout PSNR 240x256 at {h} steps, camera forced to the real scroll (dB) | {fmt(v)} | |")
        c = s.get("controllability", {})
        if c:
            lines.append(f"| {name} | scroll direction agreement (steps where the real game scrolls) | "
                         f"{fmt(c.get('direction_agreement'))} | |")
            for span, v in c.get("direction_agreement_by_step", {}).items():
                lines.append(f"| {name} | scroll direction agreement, rollout steps {span} | {fmt(v)} | |")
            lines.append(f"| {name} | scroll magnitude error (px/step) | {fmt(c.get('magnitude_mae_px'))} | |")
        ct = s.get("controllability_real_context", {})
        if ct:
            lines.append(f"| {name} | scroll direction agreement of the scroll head on the real frames (no drift) | "
                         f"{fmt(ct.get('direction_agreement'))} | |")
    return "\n".join(lines)


def sampler_table(reports: dict[str, dict]) -> str:
    """The same checkpoint evaluated with each sampler preset (report_<preset>.json beside report.json):
    one column per preset, fidelity and playability rows, as "trained levels / levels never trained on
    [/ spawns]"."""
    sets = lambda r: list(r["sets"].values())                                 # noqa: E731
    pct = lambda v: "—" if v is None else f"{100 * v:.0f} %"                  # noqa: E731

    def per_set(r: dict, get, f=fmt, spawns: bool = False) -> str:
        vals = [get(s) for s in sets(r)] + ([get({"playability": r.get("playability_spawns", {}).get("all", {})})]
                                            if spawns else [])
        return " / ".join("—" if v is None else f(v) for v in vals)
    rows = [
        ("sampler", lambda r: sampler_line(r["sampler"])),
        ("next-frame PSNR 240x256 (dB)", lambda r: per_set(r, lambda s: s.get("next_frame", {}).get("psnr_240x256"))),
        ("next frame: Mario drawn near the game's", lambda r: per_set(r, lambda s: s.get("next_frame", {}).get("mario_drawn"), pct)),
        ("15-step rollout PSNR 240x256 (dB)", lambda r: per_set(r, lambda s: s.get("rollout", {}).get("psnr_240x256", {}).get("15"))),
        ("scroll direction agreement", lambda r: per_set(r, lambda s: s.get("controllability", {}).get("direction_agreement"), pct)),
        ("Mario shown",
         lambda r: per_set(r, lambda s: s.get("playability", {}).get("mario_shown"), pct, spawns=True)),
        ("two Marios or more", lambda r: per_set(r, lambda s: s.get("playability", {}).get("mario_copies"), pct, True)),
        ("near the game's Mario, steps 1-15", lambda r: per_set(r, lambda s: s.get("playability", {}).get("mario_near_early"), pct, True)),
        ("camera travel within ±20 % of the game's", lambda r: per_set(
            r, lambda s: s.get("playability", {}).get("camera_travel_within_tolerance"), pct, True)),
        ("no camera stall over 15 steps", lambda r: per_set(r, lambda s: s.get("playability", {}).get("runs_without_long_stall"), pct, True)),
        ("evaluate's play speed, batch 1 (frames/s, backend, threads)", lambda r: "{} ({}, {})".format(
            fmt(r.get("speed", {}).get("fps")), r.get("speed", {}).get("backend", "torch"), r.get("speed", {}).get("threads"))),
    ]
    names = list(reports)
    lines = ["| | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(get(reports[n]) for n in names) + " |")
    return "\n".join(lines)


def playability_table(report: dict) -> str:
    """What a player sees: long open-loop windows per set and the hands-on minute from the spawns."""
    rows = [("10-s windows, real actions", name, s["playability"]) for name, s in report["sets"].items()
            if "runs" in s.get("playability", {})]
    sp = report.get("playability_spawns", {})
    if sp.get("all"):
        late = {"game_input_late": sp["game_input_late"]} if "game_input_late" in sp else {}
        rows.append((f"hands-on, {sp['steps']} steps from each spawn", "spawns", {**sp["all"], **late}))
    if not rows:
        return ""
    late = [(f"{what}: the game itself, input {n} NES frame{'s' * (n != 1)} late", name, p["game_input_late"])
            for what, name, p in rows if p.get("game_input_late", {}).get("runs")
            for n in [p["game_input_late"]["late_frames"]]]
    rows = [r for row in rows for r in [row] + [x for x in late if x[1] == row[1]]]
    pct = lambda v: "—" if v is None else f"{100 * v:.0f} %"                 # noqa: E731
    tiles = any("game_tiles" in p for _, _, p in rows)        # reports since the game_tiles figure
    labels = any("hud_labels" in p for _, _, p in rows)       # reports since the hud_labels figure
    clock = any("hud_clock" in p for _, _, p in rows)         # reports since the hud_clock figure
    lines = ["| run | set | runs | Mario shown | two Marios or more | near the game's Mario, steps 1-15 | camera travel / game's (median) "
             "| travel within ±20 % | no stall > 15 steps | dream alive at the end (median death step) "
             "| sharpness / game's | PSNR at 1 / 15 / 45 / 150 steps (dB) |"
             + (" the game's 8x8 tiles: playfield / HUD (the game's frames) |" if tiles else "")
             + (" HUD labels as the game's: all steps / last step |" if labels else "")
             + (" clock as the game's |" if clock else ""),
             "|---" * (12 + tiles + labels + clock) + "|"]
    for what, name, p in rows:
        ps = " / ".join(fmt(v) for v in p.get("psnr_240x256", {}).values()) or "—"
        cells = (f" {pct(p.get('game_tiles'))} / {pct(p.get('game_tiles_hud'))} ({pct(p.get('game_tiles_real'))}) |"
                 if tiles else "")
        cells += f" {pct(p.get('hud_labels'))} / {pct(p.get('hud_labels_end'))} |" if labels else ""
        cells += f" {pct(p.get('hud_clock'))} |" if clock else ""
        lines.append(f"| {what} | {name} | {p['runs']} | {pct(p['mario_shown'])} | {pct(p.get('mario_copies'))} "
                     f"| {pct(p.get('mario_near_early'))} "
                     f"| {fmt(p.get('camera_travel_ratio_median'))} | {pct(p.get('camera_travel_within_tolerance'))} "
                     f"| {pct(p['runs_without_long_stall'])} | {pct(p['alive_at_end'])} ({fmt(p['death_step_median'])}) "
                     f"| {fmt(p['sharpness_ratio'])} | {ps} |{cells}")
    misses = [(what, name, p["early_misses"]) for what, name, p in rows if p.get("early_misses")]
    if misses:
        lines += ["", "How the dream's Mario misses the game's in steps 1-15 (shares of the steps where the game shows him; "
                  "\"off\": more than 8 px):", "",
                  "| run | set | near | no sharp Mario | off in height only | off along the level only | off both ways |",
                  "|---" * 7 + "|"]
        lines += [f"| {what} | {name} | " + " | ".join(pct(m[k]) for k in ("near", "missing", "height", "along", "both")) + " |"
                  for what, name, m in misses]
    return "\n".join(lines)


def reference_section(ck: Path) -> str:
    """The dream beside the game's own late-input reference on the same runs (report_reference.json: an
    evaluate run with playability.late_frames, on episodes collected by the report's own commands)."""
    path = ck / "report_reference.json"
    if not path.exists():
        return ""
    ref = json.loads(path.read_text())
    table = playability_table(ref)
    if "game itself" not in table:
        return ""
    eps = " / ".join(str(s.get("playability", {}).get("runs", "—")) for s in ref.get("sets", {}).values())
    n = next(s["playability"]["game_input_late"]["late_frames"] for s in ref["sets"].values()
             if "game_input_late" in s.get("playability", {}))
    main = json.loads((ck / "report.json").read_text()).get("sampler", {}) if (ck / "report.json").exists() else {}
    own, off = ref.get("sampler", {}), dataclasses.asdict(SamplerConfig())   # a setting newer than a report was off in it
    diff = [f"`{k}={own[k]}` (report.json: {main.get(k, off.get(k))})" for k in own if main and own[k] != main.get(k, off.get(k))]
    sampler = f" The dream's sampler differs from report.json's in {', '.join(diff)}." if diff else ""
    return f"""
### The dream beside the game itself, input a NES frame late (report_reference.json)

The same playability run on episodes collected again by report.json's commands (`episodes`; the
collector's workers split the steps anew, so these are other episodes and other windows than above:
{eps} windows per set), with the game's own reference row under each of the dream's: each run replayed
on the emulator to its start and played with the same buttons pressed {n} NES frame{'s' * (n != 1)} late, scored
exactly as the dream is. It is how far a run that starts that little off drifts from the recording in
10 s of open-loop play: what these figures can ask of any dream that is not the game itself.{sampler}

{table}
"""


def end_model_section(ck: Path, report: dict) -> str:
    """The end model's held-out figures (end_model_report.json) and whether the dream ends with the game."""
    path = ck / "end_model_report.json"
    if not path.exists():
        return ""
    r = json.loads(path.read_text())
    pct = lambda v: "—" if v is None else f"{100 * v:.0f} %"                 # noqa: E731
    sets = [(f"10-s windows, {name}", s["playability"]) for name, s in report["sets"].items()
            if "dream_ended" in s.get("playability", {})]
    sp = report.get("playability_spawns", {})
    if "dream_ended" in sp.get("all", {}):
        sets.append(("spawn minutes", sp["all"]))
    lines = [f"""
## The end model: when the dream's game is over (`scripts/train_end_model.py`)

On every step of {r['heldout_steps']} held-out real episode steps ({r['heldout_ends']} of them the game's end), given the game's own
frames, at its threshold {r['threshold']:.3f}: it finds {pct(r['ends_found'])} of the game's ends and calls
{r['false_ends_per_1000_steps']:.1f} false ends per 1000 other steps ({r['false_ends_per_1000_last_10_steps']:.1f} per 1000 of the 10 steps before an end,
where Mario is beside what is about to kill him). At 0.5: {pct(r['ends_found_at_0.5'])} of the ends,
{r['false_ends_per_1000_steps_at_0.5']:.1f} false ends per 1000 steps.
"""]
    if sets:
        lines += ["In the dream (the playability runs above; \"with the game\": within 15 steps of the game's end, of the runs the game ended):", "",
                  "| runs | dream ended | game ended | dream ended with the game | dream ended while the game played on |",
                  "|---|---|---|---|---|"]
        lines += [f"| {what} | {pct(p['dream_ended'])} | {pct(p['game_ended'])} | {pct(p.get('ended_with_game'))} "
                  f"| {pct(p['ended_early'])} |" for what, p in sets]
    per = sp.get("per_spawn", {})
    if per and "dream_end_step" in next(iter(per.values())):
        lines += ["", "| spawn | the game ends at step | the dream ends at step |", "|---|---|---|"]
        lines += [f"| {name} | {f['game_steps'] if f['game_steps'] < f['steps'] else 'plays on'} "
                  f"| {f['dream_end_step'] or 'plays on'} |" for name, f in per.items()]
    return "\n".join(lines) + "\n"


def tile_book_section(ck: Path) -> str:
    """The tile book's figures (tiles_report.json)."""
    path = ck / "tiles_report.json"
    if not path.exists():
        return ""
    r = json.loads(path.read_text())
    pct = lambda v: "—" if v is None else f"{100 * v:.1f} %"                 # noqa: E731
    held = "".join(
        f"\n- {Path(d).name}: {h['frames']} real frames; the book holds {pct(h['cells_in_book'])} of their cells, and the "
        f"snap (limit {r['max_diff']} pixels) changes {pct(h['pixels_changed_by_snap'])} of their pixels "
        f"({pct(h['frames_changed_by_snap'])} of the frames have a changed cell)" for d, h in r.get("heldout", {}).items())
    hud = ""
    if "hud_tiles" in r:
        per = r["hud_tiles_per_cell"]
        hud = (f"\n\nThe HUD's cells (the status bar does not scroll): {r['hud_tiles']} tiles, of which each cell may show "
               f"those it shows at least {r['hud_min_count']} times and those of the cells that share a glyph with it "
               f"(digits go with digits, a letter's cell keeps its letter; a blank only where the cell itself shows one): "
               f"{per['min']}-{per['max']} tiles per cell, median {per['median']:.0f}. The HUD snap (`sampler.hud_snap`) "
               f"picks among those only; a cell farther than its limit from all of them is left as drawn where it holds "
               f"colours they lack (a sprite), and otherwise, being a garbled glyph, goes onto the nearest.")
        if "hud_static_cells" in r:
            hud += (f" {r['hud_static_cells']} of its cells, {r['hud_static_glyph_cells']} of them with a glyph, "
                    f"are static (their glyph differs between the first and the last frame of at most "
                    f"{100 * r['hud_static_share']:.0f} % of the training episodes): they keep the last frame's glyph.")
    if held:
        held = ("\n\nOn held-out real episodes (what the snap would repaint in the real game: mostly enemies drawn near "
                "a background cell and blocks in a rarely seen step of their colour cycle):" + held)
    return f"""
## The tile book: the real game's 8x8 cells (`scripts/build_tile_book.py`)

{r['tiles']} cells of the screen grid that every {r['every']}th frame of the training episodes shows at least
{r['min_count']} times ({r['distinct_cells_seen']} distinct cells seen; the kept ones make up {pct(r['training_cells_in_book'])} of all cells counted).
The default sampler snaps the frame it shows onto it (`sampler.display_snap`, the player's `--display-snap N`)
and goes on from the frame as drawn; `sampler.tile_snap` (`--tile-snap N`) feeds the snap back. The sampler
ablation below says what each does to the dream.{hud}{held}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=str(CHECKPOINTS))
    ap.add_argument("--cpu-hours", type=float, default=None, help="wall-clock hours of training on this CPU")
    ap.add_argument("--notes", default=None, help="a markdown file appended to the card (data, caveats)")
    a = ap.parse_args()
    ck = Path(a.checkpoint)
    meta = json.loads((ck / "model.json").read_text())
    report = json.loads((ck / "report.json").read_text())
    cfg = meta.get("config", {})
    sp = report.get("speed", {})
    params = {}
    try:
        from smbwm.models.world_model import WorldModel
        m, _ = WorldModel.load(ck)
        params = {k: sum(p.numel() for p in getattr(m, k).parameters()) / 1e6 for k in ("denoiser", "upsampler")}
    except Exception:  # noqa: BLE001 - the card is still useful without parameter counts
        pass
    up = meta.get("upsampler", {})
    kind = ("one pass that picks each pixel's NES palette colour" if up.get("palette") else
            f"{up.get('sample_steps')} diffusion steps" if up.get("diffusion") else "one pass")
    alone = f" ({meta['upsampler_only_steps']} of them alone, the denoiser frozen)" if meta.get("upsampler_only_steps") else ""
    card = f"""# The shipped world model

Denoiser (60x64, EDM, residual over the scroll-shifted last frame, with the scroll head) and upsampler
(60x64 -> 240x256, {kind}) as fp16 safetensors; `model.json` holds their configs and the training
config. `python src/play.py` and `python src/evaluate.py` use this folder by default.

- Parameters: denoiser {fmt(params.get('denoiser'))} M (incl. scroll head), upsampler {fmt(params.get('upsampler'))} M
- Training: {meta.get('step')} denoiser steps of batch {cfg.get('data', {}).get('batch_size')}, {meta.get('upsampler_steps')} upsampler steps{alone},
  {fmt(a.cpu_hours)} hours on a 2-core CPU (bf16 autocast + channels_last)
- Training frames: {meta.get('frames')}
- Sampler for play and evaluation: {sampler_line(report['sampler'])}

## Fidelity (`python src/evaluate.py`, report.json in this folder)

{fidelity_table(report)}

Play speed (batch 1, full pipeline to 240x256, {sp.get('device')}, {sp.get('threads')} threads, {sp.get('backend', 'torch')} backend, {sp.get('precision')}):
{fmt(sp.get('fps'))} frames/s (stages in ms: {', '.join(f'{k} {v:.1f}' for k, v in sp.get('ms_per_stage_median', {}).items())}).

![real (left) vs dream (right), open loop with the real actions](report.gif)
"""
    # playability may come from its own evaluate run (report_playability.json) when report.json predates it
    extra = ck / "report_playability.json"
    play = playability_table(report) or (playability_table(json.loads(extra.read_text())) if extra.exists() else "")
    sheet = ("![each spawn's minute of hands-on play in the dream at 1, 5, 20 and 60 s](report_spawns.png)\n"
             if (ck / "report_spawns.png").exists() else "")
    if play:
        card += f"""
## Playability (`python src/evaluate.py`: what a player sees over long open-loop play)

"Mario shown": a sharp Mario on screen (his three palette colours, >= 20 pixels each in a 16x16 window;
a blurred or ghosted Mario has none of the exact colours). "Near": within 8 px of where the game has him.
"Stall": the dream's camera still while the game's moves. "Dead": Mario lost for good or the camera
stalled for good. Sharpness: mean luminance gradient of the playfield against the game's. The game's
tiles (reports that have them): the share of 8x8 cells that are cells the real game shows often (the
tile book below), where streaks, dither and garbled digits show; sharpness counts them as detail. HUD
labels (reports that have them): of the status bar's cells that never change within a level (MARIO,
WORLD, TIME, the coin's "x", the world number), the share the dream shows exactly as the game's frame
of that step (its last frame once the game has ended). A row "the
game itself, input 1 NES frame late" (reports since `playability.late_frames`): each run replayed on
the emulator to its start and played with the same buttons pressed 1/60 s late, scored as the dream is.

{play}

![a minute of hands-on play from the first spawn: dream (left), the real game with the same buttons (right)](report_minute.gif)

{sheet}{reference_section(ck)}"""
    card += end_model_section(ck, report)
    card += tile_book_section(ck)
    others = {f.stem.removeprefix("report_"): json.loads(f.read_text()) for f in sorted(ck.glob("report_*.json"))}
    others = {k: v for k, v in others.items() if "sampler" in v and k not in ("playability", "reference")}
    if others:
        card += f"""
## Samplers (`python src/evaluate.py sampler=<preset> out=checkpoints/report_<preset>.json`)

These weights evaluated with each sampler preset, on the same episodes and spawns as above (figures:
trained levels / levels never trained on / the spawn minutes):

{sampler_table({DEFAULT_SAMPLER: report, **others})}
"""
    curve = sorted((ck / "curve").glob("*.json"))
    if curve:                       # reports of earlier checkpoints: scripts/fidelity_curve.py
        from fidelity_curve import load_points, picture, table
        series = load_points(curve)
        picture(series).save(ck / "curve" / "fidelity_curve.png")
        ev = json.loads(curve[0].read_text())
        card += f"""
## Fidelity over training (`scripts/fidelity_curve.py`, reports in `curve/`)

The same evaluation of checkpoints along the run (`checkpoint` in each report says which), smaller: {ev['sets'][next(iter(ev['sets']))]['next_frame']['samples']}
next-frame samples and {ev['sets'][next(iter(ev['sets']))]['rollout']['segments']} windows of 30 steps per set, all with a {ev['sampler']['num_steps']}-step sampler.

{table(series)}

![fidelity against training step, targets dashed](curve/fidelity_curve.png)
"""
    if a.notes:
        card += "\n" + Path(a.notes).read_text()
    (ck / "README.md").write_text(card)
    print(f"wrote {ck / 'README.md'}")


if __name__ == "__main__":
    main()
