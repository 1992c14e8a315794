"""Fidelity against training: a table and a PNG of the targets' metrics over several evaluate reports.

    python src/evaluate.py checkpoint=<ckpt> out=curve/<name>.json gif=false [eval.rollouts=32 ...]  # per checkpoint
    python scripts/fidelity_curve.py curve/*.json [--out checkpoints/fidelity_curve.png]

Each report gives one point per held-out set at its training step: next-frame PSNR at 240x256, rollout
PSNR at 15 steps and scroll direction agreement, each panel with the issue's target as a dashed line.
Drawn with Pillow only (no matplotlib here).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

# (title, value from one set's report, target)
PANELS = (
    ("next-frame PSNR 240x256 (dB)", lambda s: s["next_frame"]["psnr_240x256"], 30.0),
    ("15-step rollout PSNR 240x256 (dB)", lambda s: s["rollout"]["psnr_240x256"]["15"], 22.0),
    ("scroll direction agreement (%)", lambda s: 100 * s["controllability"]["direction_agreement"], 95.0),
)
COLORS = ((200, 60, 30), (30, 90, 200), (40, 150, 60), (150, 60, 170))
W, H, PAD = 360, 240, 40


class ReportError(ValueError):
    pass


def load_points(paths: list[Path]) -> dict[str, list[tuple[int, list[float]]]]:
    """{set name: [(training step, [value of each panel]), ...] sorted by step}."""
    series: dict[str, list[tuple[int, list[float]]]] = {}
    for p in paths:
        try:
            rep = json.loads(Path(p).read_text())
            step = int(rep["training_step"])
            for name, s in rep["sets"].items():
                series.setdefault(name, []).append((step, [float(f(s)) for _, f, _ in PANELS]))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ReportError(f"{p}: not an evaluate report with rollouts and controllability ({type(e).__name__}: {e})") from None
    return {k: sorted(v) for k, v in series.items()}


def table(series: dict) -> str:
    rows = ["| set | step | " + " | ".join(t for t, _, _ in PANELS) + " |", "|---|---|" + "---|" * len(PANELS)]
    for name, pts in series.items():
        rows += [f"| {name} | {step} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for step, vals in pts]
    return "\n".join(rows)


def _panel(series: dict, k: int, title: str, target: float) -> Image.Image:
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    steps = [s for pts in series.values() for s, _ in pts]
    vals = [v[k] for pts in series.values() for _, v in pts] + [target]
    x0, x1 = min(steps), max(steps) if max(steps) > min(steps) else min(steps) + 1
    lo, hi = min(vals), max(vals)
    lo, hi = lo - 0.05 * (hi - lo + 1), hi + 0.05 * (hi - lo + 1)
    px = lambda s: PAD + (s - x0) / (x1 - x0) * (W - 2 * PAD)          # noqa: E731
    py = lambda v: H - PAD - (v - lo) / (hi - lo) * (H - 2 * PAD)      # noqa: E731
    d.rectangle([PAD, PAD, W - PAD, H - PAD], outline=(160, 160, 160))
    d.text((PAD, 10), title, fill="black")
    for v in (lo, (lo + hi) / 2, hi):
        d.text((2, py(v) - 5), f"{v:.1f}", fill=(90, 90, 90))
    for s in (x0, x1):
        d.text((px(s) - 14, H - PAD + 6), f"{s}", fill=(90, 90, 90))
    d.text((W // 2 - 40, H - 16), "training step", fill=(90, 90, 90))
    for x in range(PAD, W - PAD, 8):                                       # dashed target line
        d.line([x, py(target), x + 4, py(target)], fill=(120, 120, 120))
    d.text((W - PAD - 60, py(target) + 3), f"target {target:g}", fill=(90, 90, 90))
    for (name, pts), color in zip(series.items(), COLORS):
        xy = [(px(s), py(v[k])) for s, v in pts]
        if len(xy) > 1:
            d.line(xy, fill=color, width=2)
        for x, y in xy:
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=color)
    return img


def picture(series: dict) -> Image.Image:
    panels = [_panel(series, k, t, target) for k, (t, _, target) in enumerate(PANELS)]
    legend_h = 18 * len(series) + 8
    img = Image.new("RGB", (W * len(panels), H + legend_h), "white")
    for i, p in enumerate(panels):
        img.paste(p, (i * W, 0))
    d = ImageDraw.Draw(img)
    for i, (name, color) in enumerate(zip(series, COLORS)):
        d.rectangle([PAD, H + 6 + 18 * i, PAD + 12, H + 16 + 18 * i], fill=color)
        d.text((PAD + 20, H + 5 + 18 * i), name, fill="black")
    return img


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("reports", nargs="+", type=Path, help="report JSON files of src/evaluate.py")
    ap.add_argument("--out", type=Path, default=Path("fidelity_curve.png"))
    a = ap.parse_args(argv)
    try:
        series = load_points(a.reports)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(table(series))
    picture(series).save(a.out)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
