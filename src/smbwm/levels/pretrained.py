"""MarioGPT's published generator (shyamsn97/Mario-GPT2-700-context-length) with transformers' own classes.

Layout of that hub repo: config.json (a distilgpt2-size GPT-2 with add_cross_attention), weights
(pytorch_model.bin / model.safetensors), and a byte-level BPE tokenizer trained on the tile text
(vocab.json, merges.txt, tokenizer.json, tokenizer_config.json, special_tokens_map.json). The text
prompt is encoded as MarioGPT's Prompter does: facebook/bart-base's feature extraction (the
model's first output, i.e. BART's last decoder hidden state) averaged over the prompt's tokens,
given to the GPT-2 as a one-token cross-attention memory. Sampling starts from MarioGPT's seed,
a single "X" tile, with its defaults temperature 2.0 and top-k 16 and its 700-token context.

Nothing is downloaded unless the hub is reachable; a local directory in the same layout works too.
"""
from __future__ import annotations

from pathlib import Path

import torch

from smbwm.levels.level import HEIGHT, TILES, Level, LevelError
from smbwm.levels.sampling import sample_tokens

MODEL_ID = "shyamsn97/Mario-GPT2-700-context-length"
PROMPT_ENCODER_ID = "facebook/bart-base"
CONTEXT = 700 - 28  # MarioGPT's sampler keeps at most context_len - 28 tokens of input


class PretrainedError(RuntimeError):
    """The pretrained model or its prompt encoder cannot be loaded (one-line message)."""


def _load(kind: str, name: str, fn):
    try:
        return fn(name)
    except (OSError, ValueError, EnvironmentError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else e.__class__.__name__
        where = "directory" if Path(name).exists() else "hub id (not in the local Hugging Face cache and the hub is unreachable?)"
        raise PretrainedError(f"cannot load the {kind} from {name!r} as a {where}: {first}") from None


class PretrainedMarioGPT:
    def __init__(self, lm, tokenizer, encoder, encoder_tokenizer):
        self.lm, self.tokenizer = lm.eval(), tokenizer
        self.encoder, self.encoder_tokenizer = encoder.eval(), encoder_tokenizer
        if not getattr(lm.config, "add_cross_attention", False):
            raise PretrainedError("the GPT-2 has no cross-attention layers: not a MarioGPT text-to-level model")
        if encoder.config.d_model != lm.config.n_embd:
            raise PretrainedError(f"prompt encoder width {encoder.config.d_model} != GPT-2 width {lm.config.n_embd}")
        self.id_to_tile: dict[int, str] = {}
        for ch in TILES:
            ids = tokenizer(ch, add_special_tokens=False).input_ids
            if len(ids) == 1:
                self.id_to_tile[ids[0]] = ch
        if "X" not in self.id_to_tile.values():
            raise PretrainedError("the tokenizer has no single-token 'X' tile: not a MarioGPT tokenizer")
        self.seed_id = next(i for i, c in self.id_to_tile.items() if c == "X")

    @classmethod
    def load(cls, model: str = MODEL_ID, prompt_encoder: str = PROMPT_ENCODER_ID) -> PretrainedMarioGPT:
        from transformers import AutoTokenizer, BartModel, GPT2LMHeadModel
        tok = _load("level tokenizer", model, AutoTokenizer.from_pretrained)
        lm = _load("GPT-2 level model", model, GPT2LMHeadModel.from_pretrained)
        etok = _load("prompt tokenizer", prompt_encoder, AutoTokenizer.from_pretrained)
        enc = _load("BART prompt encoder", prompt_encoder, BartModel.from_pretrained)
        return cls(lm, tok, enc, etok)

    @torch.no_grad()
    def encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """(B, 1, d) prompt memories: BART's last hidden state averaged over each prompt's tokens."""
        out = []
        for p in prompts:
            inputs = self.encoder_tokenizer(p, return_tensors="pt")
            out.append(self.encoder(**inputs)[0][0].mean(0))
        return torch.stack(out).unsqueeze(1)

    def generate(self, prompts: list[str], columns: int, temperature: float = 2.0, top_k: int = 16,
                 seed: int | None = None) -> list[Level]:
        if columns < 1:
            raise ValueError(f"columns must be >= 1, got {columns}")
        gen = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(0, 2**31, ()).item()))
        prefix = torch.full((len(prompts), 1), self.seed_id, dtype=torch.long)
        max_pos = min(CONTEXT, self.lm.config.n_positions)
        ids = sample_tokens(self.lm, prefix, columns * HEIGHT - 1, max_positions=max_pos,
                            allowed=torch.tensor(sorted(self.id_to_tile)), temperature=temperature,
                            top_k=top_k, encoder_hidden_states=self.encode_prompts(prompts),
                            generator=gen, fixed_prefix=False)
        levels = []
        for row in torch.cat([prefix, ids], dim=1).tolist():
            tiles = [self.id_to_tile[i] for i in row]
            cols = ["".join(tiles[c:c + HEIGHT]) for c in range(0, len(tiles), HEIGHT)]
            try:
                levels.append(Level.from_columns(cols))
            except LevelError as e:  # cannot happen with only tile ids allowed; say so if it does
                raise PretrainedError(f"pretrained model produced an invalid level: {e}") from None
        return levels
