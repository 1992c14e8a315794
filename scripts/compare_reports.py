"""Two or more evaluate reports side by side: the playability figures per set, and window by window.

    python src/evaluate.py ... out=a.json                         # the same episodes and eval.seed,
    python src/evaluate.py ... sampler.reuse_deep=2 out=b.json    # one setting changed
    python scripts/compare_reports.py a.json b.json

For each set (the held-out window sets and the spawn minutes) a table of the figures of every report,
the shares of runs with their count and a 95 % Wilson interval: with 16 windows a share moves by 6
points per window, and the interval says how little one evaluation settles. Where the reports played
the same windows (the same episodes, seed and window count: evaluate's `per_window` records each window's
episode and first frame; the spawn minutes are paired by spawn), a paired table for each report
against the first: in how many runs it did better, worse or the same, and the two-sided sign test's p
over the runs that differ. `--game` adds the game's own late-input reference (evaluate's
`game_input_late`) as a last column, paired too: does the dream miss where the game itself, its input
a NES frame late, misses as well?
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from smbwm.evaluation.playability import PlayabilityConfig, run_outcomes

# (key in a set's playability summary, label, kind): "share" of steps, "runs" share of runs, "ratio", "db"
FIGURES = (
    ("mario_shown", "a sharp Mario on screen (share of steps)", "share"),
    ("mario_copies", "two sharp Marios or more (share of steps)", "share"),
    ("mario_near_early", "within 8 px of the game's Mario, steps 1-15", "share"),
    ("camera_travel_ratio_median", "camera travel / the game's (median)", "ratio"),
    ("camera_travel_within_tolerance", "runs with travel within ±20 % of the game's", "runs"),
    ("runs_without_long_stall", "runs without a camera stall over 15 steps", "runs"),
    ("alive_at_end", "runs with Mario alive at the end", "runs"),
    ("sharpness_ratio", "sharpness / the game's", "ratio"),
    ("game_tiles", "the game's tiles in the playfield (share of cells)", "share"),
    ("game_tiles_hud", "the game's tiles in the HUD (share of cells)", "share"),
    ("hud_labels", "the HUD's labels as the game's (share of cells and steps)", "share"),
    ("hud_labels_end", "the HUD's labels as the game's at the last step", "share"),
    ("hud_clock", "the clock as the game's (share of steps while the game runs)", "share"),
)
# per-run figures compared window by window: (label, value of one run; higher is better)
PAIRED = (
    ("travel within ±20 %", lambda r, cfg: run_outcomes(r, cfg)["travel_in_band"]),
    ("no camera stall over 15 steps", lambda r, cfg: run_outcomes(r, cfg)["no_long_stall"]),
    ("alive at the end", lambda r, cfg: run_outcomes(r, cfg)["alive_at_end"]),
    ("Mario shown (share of steps)", lambda r, cfg: r["mario_shown"]),
    ("near the game's Mario, steps 1-15", lambda r, cfg: r.get("near_early")),
    ("the game's tiles in the playfield", lambda r, cfg: r.get("game_tiles")),
    ("the HUD's labels as the game's", lambda r, cfg: r.get("hud_labels")),
    ("the clock as the game's", lambda r, cfg: r.get("hud_clock")),
)


class ReportError(ValueError):
    pass


def load_parts(path: Path, game: bool = False) -> dict[str, tuple[dict, dict | None]]:
    """{part name: (summary, {run key: run figures} or None)} of one report: each window set and the spawns;
    game=True: of the game's own late-input reference in it instead ({} if it has none)."""
    try:
        rep = json.loads(Path(path).read_text())
        parts = {}
        for name, s in rep["sets"].items():
            p = s.get("playability") or {}
            p = p.get("game_input_late") or {} if game else p
            if "mario_shown" in p:
                parts[name] = (p, window_keys(p["per_window"]) if p.get("per_window") else None)
        spawns = rep.get("playability_spawns") or {}
        if game and "game_input_late" in spawns:
            parts["spawn minutes"] = (spawns["game_input_late"], spawns["game_input_late"].get("per_spawn"))
        elif not game and "all" in spawns:
            parts["spawn minutes"] = (spawns["all"], spawns.get("per_spawn"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ReportError(f"{path}: not an evaluate report ({type(e).__name__}: {e})") from None
    return parts


def window_keys(runs: list[dict]) -> dict:
    """{(episode, first frame, n-th such window): run}: two windows of a set may start at the same frame."""
    out, seen = {}, {}
    for i, r in enumerate(runs):
        where = (r.get("episode", i), r.get("start", i))
        seen[where] = seen.get(where, -1) + 1
        out[(*where, seen[where])] = r
    return out


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a share k/n."""
    if n == 0:
        return 0.0, 1.0
    p, d = k / n, 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test: p of a split at least this uneven if either side were as likely."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def cell(summary: dict, key: str, kind: str) -> str:
    v = summary.get(key)
    if v is None:
        return "–"
    if kind == "share":
        return f"{100 * v:.1f} %"
    if kind == "runs":
        n = summary["runs_scored_for_travel"] if key == "camera_travel_within_tolerance" else summary["runs"]
        k = round(v * n)
        lo, hi = wilson(k, n)
        return f"{100 * v:.0f} % ({k}/{n}; {100 * lo:.0f}-{100 * hi:.0f})"
    return f"{v:.2f}"


def figures_table(names: list[str], summaries: list[dict]) -> str:
    rows = ["| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key, label, kind in FIGURES:
        if any(s.get(key) is not None for s in summaries):
            rows.append(f"| {label} | " + " | ".join(cell(s, key, kind) for s in summaries) + " |")
    psnr = [s.get("psnr_240x256") or {} for s in summaries]
    for h in sorted({h for p in psnr for h in p}, key=int):
        rows.append(f"| PSNR 240x256 at step {h} (dB) | " + " | ".join(f"{p[h]:.2f}" if h in p else "–" for p in psnr) + " |")
    return "\n".join(rows)


def paired_table(base: dict, other: dict, cfg: PlayabilityConfig) -> str:
    """Runs of `other` against the same runs of `base`: better / worse / same, sign test over the differing."""
    rows = ["| per run | better | worse | same (targets: both met / neither) | sign test p |", "|---|---:|---:|---:|---:|"]
    for label, value in PAIRED:
        pairs = [(value(base[k], cfg), value(other[k], cfg)) for k in base]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        if not pairs:
            continue
        better = sum(b > a for a, b in pairs)
        worse = sum(b < a for a, b in pairs)
        same = f"{len(pairs) - better - worse}"
        if all(isinstance(a, bool) for a, _ in pairs):        # a target met or not: which way they agree
            same += f" ({sum(a and b for a, b in pairs)} / {sum(not a and not b for a, b in pairs)})"
        rows.append(f"| {label} | {better} | {worse} | {same} | {sign_test(better, worse):.2f} |")
    return "\n".join(rows)


def compare(paths: list[Path], game: bool = False, cfg: PlayabilityConfig | None = None) -> str:
    """The tables; game=True adds the game's own late-input reference (of the first report that has one)
    as the last column, paired against the first report like the others."""
    cfg = cfg or PlayabilityConfig()
    names = [Path(p).stem for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    loaded = [(n, p, load_parts(p), load_parts(p, game=True) if game else {}) for n, p in zip(names, paths)]
    for n, p, parts, of_game in loaded:    # a reference_only=true report serves only as the game's column
        if not parts and not of_game:
            raise ReportError(f"{p}: an evaluate report without playability figures (run evaluate with playability on)")
    names, reports = [n for n, _, parts, _ in loaded if parts], [parts for _, _, parts, _ in loaded if parts]
    if game:
        found = [(n, of_game) for n, _, _, of_game in loaded if of_game]
        if not found:
            raise ReportError("--game: none of the reports has the game's late-input reference (playability.late_frames)")
        found.sort(key=lambda f: not any(runs for _, runs in f[1].values()))    # one with its runs first: it pairs
        names.append(f"the game, input late ({found[0][0]})")
        reports.append(found[0][1])
    if not reports:
        raise ReportError("no report with the dream's playability figures")
    out = []
    for part in dict.fromkeys(k for r in reports for k in r):
        have = [(n, r[part]) for n, r in zip(names, reports) if part in r]
        out.append(f"## {part}\n\n" + figures_table([n for n, _ in have], [s for _, (s, _) in have]))
        (base_name, (_, base)), rest = have[0], have[1:]
        for name, (_, runs) in rest:
            if not base or not runs:
                out.append(f"{name} against {base_name}: a report without per-window figures (written before "
                           "evaluate kept them), no paired comparison")
            elif set(base) != set(runs):
                out.append(f"{name} against {base_name}: other windows (episodes, seed or window count differ), "
                           "no paired comparison")
            else:
                out.append(f"{name} against {base_name}, the same {len(base)} runs:\n\n" + paired_table(base, runs, cfg))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", type=Path, help="evaluate reports (JSON); the first is the base of the paired tables")
    ap.add_argument("--game", action="store_true",
                    help="add the game's own reference (its input a NES frame late) as a last column, paired too")
    args = ap.parse_args(argv)
    try:
        print(compare(args.reports, args.game))
    except ReportError as e:
        print(f"compare_reports: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
