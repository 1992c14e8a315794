"""Text-to-level with the small shipped generator: prompts in, validated 14-row Levels out."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from smbwm.levels.generator import TILE_TOKENS, GeneratorConfig, decode_tiles, load_checkpoint, prompt_ids
from smbwm.levels.level import HEIGHT, Level
from smbwm.levels.prompts import Prompt, parse_prompt
from smbwm.levels.sampling import sample_tokens
from smbwm.utils.paths import LEVEL_GEN_CHECKPOINT

DEFAULT_CHECKPOINT = LEVEL_GEN_CHECKPOINT


@dataclass
class SampleConfig:
    columns: int = 100
    temperature: float = 0.8  # 1.0 scatters stray tiles with this small model; 0.8 keeps structure
    top_k: int = 8
    threads: int = 1  # tiny per-token work: one thread is much faster on a shared CPU


class LevelGenerator:
    def __init__(self, model, cfg: GeneratorConfig, meta: dict | None = None):
        self.model, self.cfg, self.meta = model.eval(), cfg, meta or {}

    @classmethod
    def load(cls, ckpt_dir: str | Path = DEFAULT_CHECKPOINT) -> LevelGenerator:
        model, cfg, meta = load_checkpoint(ckpt_dir)
        return cls(model, cfg, meta)

    def generate(self, prompts: list[Prompt | str], sample: SampleConfig | None = None,
                 seed: int | None = None) -> list[Level]:
        """One level per prompt, all sampled together as a batch."""
        sample = sample or SampleConfig()
        if sample.columns < 1:
            raise ValueError(f"columns must be >= 1, got {sample.columns}")
        torch.set_num_threads(sample.threads)
        ps = [parse_prompt(p) if isinstance(p, str) else p for p in prompts]
        prefix = torch.tensor([prompt_ids(p) for p in ps], dtype=torch.long)
        gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, ()).item()))
        ids = sample_tokens(self.model, prefix, sample.columns * HEIGHT, max_positions=self.cfg.n_positions,
                            allowed=torch.arange(len(TILE_TOKENS)), temperature=sample.temperature,
                            top_k=sample.top_k, generator=gen)
        return [decode_tiles(row.tolist()) for row in ids]
