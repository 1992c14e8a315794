"""KV-cached top-k / temperature sampling of level tiles from a causal LM (ours or MarioGPT's).

When the context fills up, generation re-primes the cache from the prefix plus the most recent
columns (column-aligned, as MarioGPT's sampler crops its input), so levels can be longer than the
model's context.
"""
from __future__ import annotations

import torch

from smbwm.levels.level import HEIGHT


@torch.no_grad()
def sample_tokens(model: torch.nn.Module, prefix: torch.Tensor, n_tokens: int, *, max_positions: int,
                  allowed: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                  keep_columns: int | None = None, encoder_hidden_states: torch.Tensor | None = None,
                  generator: torch.Generator | None = None, fixed_prefix: bool = True) -> torch.Tensor:
    """Sample n_tokens after `prefix` (B, P); only ids in `allowed` are ever drawn. Returns (B, n_tokens).

    max_positions: positions the model may see at once (prefix included).
    keep_columns: columns kept when re-priming a full context (default: half of the context).
    fixed_prefix: the prefix is conditioning (our prompt tokens) and is kept in front on re-priming;
        False: the prefix is the level's first tiles (MarioGPT's "X" seed) and scrolls out like them.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    room = (max_positions - (prefix.shape[1] if fixed_prefix else 0)) // HEIGHT  # whole columns that fit after the prefix
    if room < 2:
        raise ValueError(f"context of {max_positions} positions is too short for a {prefix.shape[1]}-token prefix")
    keep_columns = max(1, min(keep_columns or room // 2, room - 1))
    mask = torch.full((model.config.vocab_size,), float("-inf"))
    mask[allowed] = 0.0
    k = min(top_k, len(allowed)) if top_k > 0 else 0
    out = torch.empty(prefix.shape[0], n_tokens, dtype=torch.long)
    pending, past, seen = prefix, None, 0
    model.eval()
    for t in range(n_tokens):
        res = model(input_ids=pending, past_key_values=past, use_cache=True,
                    encoder_hidden_states=encoder_hidden_states)
        past, seen = res.past_key_values, seen + pending.shape[1]
        logits = res.logits[:, -1, :].float() + mask
        if k:
            kth = torch.topk(logits, k, dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits / temperature, dim=-1)
        nxt = torch.multinomial(probs, 1, generator=generator)
        out[:, t] = nxt[:, 0]
        if seen + 1 > max_positions:  # cache is full: restart from prefix + recent columns
            if fixed_prefix:
                keep = keep_columns * HEIGHT + (t + 1) % HEIGHT
                pending = torch.cat([prefix, out[:, t + 1 - keep:t + 1]], dim=1)
            else:
                level = torch.cat([prefix, out[:, :t + 1]], dim=1)
                pending = level[:, -(keep_columns * HEIGHT + level.shape[1] % HEIGHT):]
            past, seen = None, 0
        else:
            pending = nxt
    return out
