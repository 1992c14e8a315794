"""DIAMOND-style building blocks: Fourier noise features, AdaGroupNorm, ResBlocks, a 4-level UNet."""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F


class FourierFeatures(nn.Module):
    """Random Fourier features of a scalar (the EDM noise level c_noise)."""

    def __init__(self, dim: int):
        super().__init__()
        assert dim % 2 == 0
        self.register_buffer("weight", torch.randn(1, dim // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B,) -> (B, dim)
        f = 2 * math.pi * x[:, None].float() @ self.weight
        return torch.cat([f.cos(), f.sin()], dim=-1)


class AdaGroupNorm(nn.Module):
    """GroupNorm whose scale and shift come from the conditioning vector: x * (1 + scale) + shift."""

    def __init__(self, channels: int, cond_dim: int, groups: int = 8):
        super().__init__()
        self.groups = min(groups, channels)
        self.linear = nn.Linear(cond_dim, 2 * channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.group_norm(x, self.groups)
        scale, shift = self.linear(cond)[:, :, None, None].chunk(2, dim=1)
        return x * (1 + scale) + shift


class SelfAttention2d(nn.Module):
    def __init__(self, channels: int, cond_dim: int, head_dim: int = 32):
        super().__init__()
        self.heads = max(1, channels // head_dim)
        self.norm = AdaGroupNorm(channels, cond_dim)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x, cond)).view(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        y = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(y.transpose(-1, -2).reshape(b, c, h, w))


class ResBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, cond_dim: int, attn: bool = False):
        super().__init__()
        self.norm1 = AdaGroupNorm(in_ch, cond_dim)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.norm2 = AdaGroupNorm(out_ch, cond_dim)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.attn = SelfAttention2d(out_ch, cond_dim) if attn else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x, cond)))
        h = self.conv2(F.silu(self.norm2(h, cond)))
        x = self.skip(x) + h
        return self.attn(x, cond) if self.attn is not None else x


class UNet(nn.Module):
    """4-level UNet (levels = len(channels)); pads any input to a multiple of 2**(levels-1)."""

    def __init__(self, in_ch: int, out_ch: int, channels: Sequence[int], depths: Sequence[int], cond_dim: int,
                 attn_levels: Sequence[bool]):
        super().__init__()
        self.stride = 2 ** (len(channels) - 1)
        self.conv_in = nn.Conv2d(in_ch, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.up = nn.ModuleList()
        skips, c_prev = [], channels[0]
        for i, (c, d) in enumerate(zip(channels, depths)):
            blocks = nn.ModuleList()
            for _ in range(d):
                blocks.append(ResBlock(c_prev, c, cond_dim, attn_levels[i]))
                c_prev = c
                skips.append(c)
            self.down.append(blocks)
        self.mid = nn.ModuleList([ResBlock(c_prev, c_prev, cond_dim, True), ResBlock(c_prev, c_prev, cond_dim)])
        for i in reversed(range(len(channels))):
            blocks = nn.ModuleList()
            for _ in range(depths[i]):
                blocks.append(ResBlock(c_prev + skips.pop(), channels[i], cond_dim, attn_levels[i]))
                c_prev = channels[i]
            self.up.append(blocks)
        self.downsamples = nn.ModuleList([nn.Conv2d(c, c, 3, 2, 1) for c in channels[:-1]])
        self.upsamples = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1) for c in reversed(channels[1:])])
        self.norm_out = nn.GroupNorm(min(8, channels[0]), channels[0])
        self.conv_out = nn.Conv2d(channels[0], out_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.run(x, cond)[0]

    def run(self, x: torch.Tensor, cond: torch.Tensor, keep: int = 0,
            deep: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(output, deep features). keep = 0: the whole UNet, no features kept. keep = k > 0 without `deep`:
        the whole UNet, also returning the up path's input to level k-1 (B, channels[k], H/2^k, W/2^k);
        with `deep` (those features from an earlier call): only levels 0..k-1 run, the deeper ones are
        reused (DeepCache, Ma et al. 2024): a sampler's later steps change the top of the UNet, where
        Mario's pixels are, more than the coarse levels that carry the layout."""
        h0, w0 = x.shape[-2:]
        ph, pw = (-h0) % self.stride, (-w0) % self.stride
        x = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        x = self.conv_in(x)
        levels, reuse = len(self.down), keep > 0 and deep is not None
        skips = []
        for i, blocks in enumerate(self.down[:keep] if reuse else self.down):
            for blk in blocks:
                x = blk(x, cond)
                skips.append(x)
            if i < len(self.downsamples) and not (reuse and i == keep - 1):
                x = self.downsamples[i](x)
        if reuse:
            x = deep
        else:
            for blk in self.mid:
                x = blk(x, cond)
        kept = None
        for i, blocks in enumerate(self.up):
            if reuse and i < levels - keep:
                continue                           # a level of the reused deep features
            if i == levels - keep and not reuse:
                kept = x
            if i > 0:
                x = self.upsamples[i - 1](F.interpolate(x, scale_factor=2.0, mode="nearest"))
            for blk in blocks:
                x = blk(torch.cat([x, skips.pop()], 1), cond)
        x = self.conv_out(F.silu(self.norm_out(x)))
        return x[..., :h0, :w0], kept
