"""Which MarioGPT levels `python src/collect.py env=levels` plays, as LevelEnv level specs.

    level_file=<file.txt | folder | [a.txt,b.txt]>   play these files
    prompt="many pipes, some enemies"                generate env.generate.n_levels levels from it
    level=corpus                                     a random corpus window per episode
    (default)                                        generate levels from varied prompts
Generated levels are saved as <env.level_dir>/<sha12>.txt (+ .json with the prompt), and the
collector plays them as `gpt:<sha12>`; re-running the same command reuses them.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from smbwm.envs.level_env import CORPUS_SPECS, level_id
from smbwm.levels.prompts import KEYWORDS, Prompt

CORPUS_LEVELS = ("corpus", "random")


def varied_prompts(n: int, seed: int) -> list[str]:
    """n prompts drawn uniformly over MarioGPT's attribute keywords."""
    rng = np.random.default_rng(seed)
    def pick(kind: str) -> str:
        options = sorted(set(KEYWORDS[kind]), key=KEYWORDS[kind].index)
        return options[int(rng.integers(len(options)))]
    return [str(Prompt(pick("pipes"), pick("enemies"), pick("blocks"), pick("elevation"))) for _ in range(n)]


def level_files(spec: Any) -> list[str]:
    items = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    out: list[str] = []
    for item in items:
        p = Path(str(item)).expanduser()
        if p.is_dir():
            found = sorted(p.glob("*.txt"))
            if not found:
                raise ValueError(f"level_file: {p} holds no .txt level files")
            out += [str(f) for f in found]
        elif p.is_file():
            out.append(str(p))
        else:
            raise ValueError(f"level_file: {p} does not exist")
    return out


def generate_levels(prompts: list[str], level_dir: str | Path, gen_cfg: dict[str, Any], seed: int) -> list[str]:
    """Sample one level per prompt with the shipped generator; returns their gpt:<sha12> ids."""
    from smbwm.levels.generate import DEFAULT_CHECKPOINT, LevelGenerator, SampleConfig
    from smbwm.levels.generator import GeneratorError
    from smbwm.levels.prompts import PromptError, parse_prompt
    try:
        parsed = [parse_prompt(p) for p in prompts]
    except PromptError as e:
        raise ValueError(str(e)) from None
    level_dir = Path(level_dir)
    level_dir.mkdir(parents=True, exist_ok=True)
    index = level_dir / f"generated_s{seed}.json"
    if index.exists():                           # re-running a command resumes with the same levels
        saved = json.loads(index.read_text())
        if saved.get("prompts") == [str(p) for p in parsed] and all(
                (level_dir / f"{i[4:]}.txt").exists() for i in saved["levels"]):
            return saved["levels"]
    try:
        gen = LevelGenerator.load(gen_cfg.get("checkpoint") or DEFAULT_CHECKPOINT)
    except GeneratorError as e:
        raise ValueError(f"{e} (or play corpus levels: level=corpus)") from None
    sample = SampleConfig(columns=int(gen_cfg.get("columns", 100)), temperature=float(gen_cfg.get("temperature", 1.0)),
                          top_k=int(gen_cfg.get("top_k", 8)))
    ids = []
    batch = int(gen_cfg.get("batch", 8))
    from tqdm import tqdm
    for i in tqdm(range(0, len(parsed), batch), desc="generate levels", unit="batch"):
        for prompt, level in zip(parsed[i:i + batch], gen.generate(parsed[i:i + batch], sample, seed=seed + i)):
            lid = level_id(level.text())
            level.save(level_dir / f"{lid[4:]}.txt")
            (level_dir / f"{lid[4:]}.json").write_text(json.dumps({"prompt": str(prompt)}))
            ids.append(lid)
    index.write_text(json.dumps({"prompts": [str(p) for p in parsed], "levels": ids}, indent=1))
    return ids


def collect_levels(cfg) -> list[str]:
    """The level specs collect.py hands to LevelEnv, from the collect config."""
    if cfg.get("level_file"):
        return level_files(cfg.level_file)
    spec = str(cfg.get("level") or "").strip().lower()
    if cfg.get("prompt") is None and spec in CORPUS_LEVELS:
        return ["corpus"]
    if spec not in CORPUS_SPECS and not cfg.get("prompt"):   # explicit specs: corpus:<start>, gpt:<sha12>, x.txt
        return [str(x) for x in (list(cfg.level) if OmegaConf.is_list(cfg.level) else [cfg.level])]
    gen_cfg = dict(cfg.env.get("generate") or {})
    n = gen_cfg.get("n_levels") or (int(cfg.episodes) if not cfg.total_steps else 20)
    prompts = [str(cfg.prompt)] * int(n) if cfg.get("prompt") else varied_prompts(int(n), int(cfg.seed))
    return generate_levels(prompts, cfg.env.level_dir, gen_cfg, int(cfg.seed))
