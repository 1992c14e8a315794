"""Text to Mario level: writes level.txt (14 rows of MarioGPT tiles) and level.png.

    python src/generate_level.py "many pipes, some enemies, low elevation"
    python src/generate_level.py "no pipes, many enemies, many blocks, high elevation" \
        --columns 150 --temperature 1.2 --seed 3 --out levels/mine
    python src/generate_level.py "some pipes" --pretrained shyamsn97/Mario-GPT2-700-context-length

Prompt parts: <no|little|some|many> pipes, <no|little|some|many> enemies, <little|some|many> blocks,
<low|high> elevation; omitted parts default to some/some/some/low. --pretrained uses MarioGPT's
published model (hub cache or a local dir; needs its BART prompt encoder too).
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from smbwm.utils.config_errors import config_error


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prompt", help='e.g. "many pipes, some enemies, little blocks, low elevation"')
    p.add_argument("--temperature", type=float, default=None, help="sampling temperature (default 0.8; pretrained 2.0)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest tiles (default 8; pretrained 16)")
    p.add_argument("--columns", type=int, default=100, help="level length in columns (16 px each)")
    p.add_argument("--out", default="generated_level", help="output folder for level.txt and level.png")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--checkpoint", default=None, help="generator dir (default: checkpoints/level_gen)")
    p.add_argument("--pretrained", default=None, metavar="NAME_OR_DIR",
                   help="use MarioGPT's pretrained GPT-2 (e.g. shyamsn97/Mario-GPT2-700-context-length)")
    p.add_argument("--prompt-encoder", default="facebook/bart-base", help="BART prompt encoder for --pretrained")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    a = _args(argv)
    from smbwm.levels.prompts import PromptError, parse_prompt  # light: bad input fails before torch loads
    if a.columns < 1 or a.columns > 10_000:
        config_error(f"--columns must be between 1 and 10000, got {a.columns}")
    if a.temperature is not None and not (math.isfinite(a.temperature) and a.temperature > 0):
        config_error(f"--temperature must be > 0 and finite, got {a.temperature}")
    if a.seed is not None and a.seed < 0:
        config_error(f"--seed must be >= 0, got {a.seed}")
    if a.top_k is not None and a.top_k < 0:
        config_error(f"--top-k must be >= 0 (0 = no top-k), got {a.top_k}")
    try:
        prompt = parse_prompt(a.prompt)
    except PromptError as e:
        config_error(str(e))
    t0 = time.time()
    from smbwm.levels.generate import DEFAULT_CHECKPOINT, LevelGenerator, SampleConfig
    from smbwm.levels.generator import GeneratorError
    from smbwm.levels.render import save_level_png
    if a.pretrained:
        from smbwm.levels.pretrained import PretrainedError, PretrainedMarioGPT
        try:
            gen = PretrainedMarioGPT.load(a.pretrained, a.prompt_encoder)
        except PretrainedError as e:
            config_error(str(e))
        level = gen.generate([str(prompt)], a.columns, temperature=a.temperature or 2.0,
                             top_k=16 if a.top_k is None else a.top_k, seed=a.seed)[0]
    else:
        try:
            gen = LevelGenerator.load(a.checkpoint or DEFAULT_CHECKPOINT)
        except GeneratorError as e:
            config_error(str(e))
        sample = SampleConfig(columns=a.columns, temperature=a.temperature or 0.8,
                              top_k=8 if a.top_k is None else a.top_k)
        level = gen.generate([prompt], sample, seed=a.seed)[0]
    out = Path(a.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        level.save(out / "level.txt")
        save_level_png(level, out / "level.png")
    except OSError as e:
        config_error(f"cannot write to {out}: {e.strerror or e}")
    print(f"{prompt} -> {out}/level.txt, {out}/level.png ({level.width} columns, {time.time() - t0:.1f} s)")
    return out


if __name__ == "__main__":
    main()
