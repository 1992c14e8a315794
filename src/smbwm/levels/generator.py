"""The small text-to-level generator: a GPT-2 causal LM over tiles, prompted by prefix tokens.

A training sequence is four prompt tokens (pipes, enemies, blocks, elevation of the window, as
MarioGPT's Prompter computes them) followed by the window's tiles in MarioGPT's order (column by
column, each bottom to top). MarioGPT conditions through cross-attention on a BART embedding of the
prompt text; with only four categorical attributes, prefix tokens carry the same information and
need no 140M-parameter text encoder on this CPU.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file
from transformers import GPT2Config, GPT2LMHeadModel

from smbwm.levels.level import HEIGHT, TILES, Level
from smbwm.levels.prompts import KEYWORDS, ORDER, WINDOW, Prompt

TILE_TOKENS = list(TILES)  # ids 0..13
PROMPT_TOKENS = [f"{k}={w}" for k in ORDER for w in dict.fromkeys(KEYWORDS[k])]  # 13 ids after tiles
VOCAB = TILE_TOKENS + PROMPT_TOKENS
TOKEN_ID = {t: i for i, t in enumerate(VOCAB)}
N_PREFIX = len(ORDER)
META_FILE = "level_gen.json"


class GeneratorError(RuntimeError):
    """A missing or unreadable generator checkpoint (one-line message)."""


@dataclass
class GeneratorConfig:
    n_embd: int = 64  # ~0.1M parameters: trains in an hour on a shared, niced CPU
    n_layer: int = 2
    n_head: int = 4
    # the model sees N_PREFIX + 14 * context_columns positions: MarioGPT's 700-token window, which its
    # prompt thresholds assume
    context_columns: int = WINDOW
    dropout: float = 0.1

    @property
    def n_positions(self) -> int:
        return N_PREFIX + HEIGHT * self.context_columns


def build_model(cfg: GeneratorConfig) -> GPT2LMHeadModel:
    gcfg = GPT2Config(vocab_size=len(VOCAB), n_positions=cfg.n_positions, n_embd=cfg.n_embd,
                      n_layer=cfg.n_layer, n_head=cfg.n_head, resid_pdrop=cfg.dropout,
                      embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, bos_token_id=None,
                      eos_token_id=None, pad_token_id=None, loss_type="ForCausalLM")
    return GPT2LMHeadModel(gcfg)


def prompt_ids(prompt: Prompt) -> list[int]:
    return [TOKEN_ID[f"{k}={v}"] for k, v in zip(ORDER, prompt.values())]


def level_ids(level: Level) -> list[int]:
    return [TOKEN_ID[ch] for col in level.to_columns() for ch in col]


def encode(level: Level, prompt: Prompt) -> list[int]:
    return prompt_ids(prompt) + level_ids(level)


def decode_tiles(ids: list[int]) -> Level:
    """Tile ids (a multiple of 14, MarioGPT order) back to a Level."""
    cols = ["".join(TILE_TOKENS[i] for i in ids[c:c + HEIGHT]) for c in range(0, len(ids), HEIGHT)]
    return Level.from_columns(cols)


def save_checkpoint(model: GPT2LMHeadModel, cfg: GeneratorConfig, out_dir: str | Path,
                    extra: dict | None = None) -> Path:
    """model.safetensors + level_gen.json (architecture, vocab, training state); no pickle."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
             if k != "lm_head.weight"}  # tied to the token embedding
    tmp = out / "model.safetensors.tmp"
    save_file(state, str(tmp))
    tmp.replace(out / "model.safetensors")
    meta = {"format": "smb-world-model/level-gen", "version": 1, "config": asdict(cfg),
            "vocab": VOCAB, **(extra or {})}
    (out / META_FILE).write_text(json.dumps(meta, indent=1))
    return out


def load_checkpoint(ckpt_dir: str | Path) -> tuple[GPT2LMHeadModel, GeneratorConfig, dict]:
    d = Path(ckpt_dir)
    meta_path, weights = d / META_FILE, d / "model.safetensors"
    if not meta_path.exists() or not weights.exists():
        raise GeneratorError(f"{d}: not a level generator checkpoint (needs {META_FILE} and model.safetensors)")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise GeneratorError(f"{meta_path}: invalid JSON ({e})") from None
    if meta.get("format") != "smb-world-model/level-gen" or meta.get("vocab") != VOCAB:
        raise GeneratorError(f"{meta_path}: wrong format or tile vocabulary for this code version")
    cfg = GeneratorConfig(**meta["config"])
    model = build_model(cfg)
    missing, unexpected = model.load_state_dict(load_file(str(weights)), strict=False)
    if unexpected or [k for k in missing if k != "lm_head.weight"]:
        raise GeneratorError(f"{weights}: weights do not match {META_FILE} (missing {missing[:2]}, unexpected {unexpected[:2]})")
    model.tie_weights()
    model.eval()
    return model, cfg, meta
