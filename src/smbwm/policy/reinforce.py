"""REINFORCE with a value baseline for the Modular Mind (torch), plus a behaviour-cloning warm start.

The loss of a batch of on-policy episodes: −log π(a|s) · A (A = discounted return − V(s), normalised
over the batch) + value_coef · (V − G)² − entropy_coef · H(π). The warm start fits the policy to a
few episodes of the scripted runner (cross-entropy) so REINFORCE starts from a runner that already
jumps instead of spending its budget discovering the right button.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from smbwm.policy.model import ModularMind
from smbwm.policy.rollout import Trajectory


@dataclass
class LossConfig:
    gamma: float = 0.98
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    return_scale: float = 10.0     # the value head predicts returns / return_scale (keeps its loss O(1))


def discounted(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out = np.zeros_like(rewards, dtype=np.float32)
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        out[t] = g
    return out


def reinforce_loss(model: ModularMind, inputs: torch.Tensor, actions: torch.Tensor, returns: torch.Tensor,
                   cfg: LossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    out = model(inputs)
    logp_all = F.log_softmax(out["logits"], dim=-1)
    logp = logp_all.gather(1, actions[:, None])[:, 0]
    returns = returns / cfg.return_scale
    adv = returns - out["value"].detach()
    adv = (adv - adv.mean()) / (adv.std() + 1e-6) if len(adv) > 1 else adv
    entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
    value_loss = F.mse_loss(out["value"], returns)
    loss = -(logp * adv).mean() + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
    return loss, {"loss": loss.item(), "entropy": entropy.item(), "value_loss": value_loss.item()}


def batch_tensors(trajs: Sequence[Trajectory], gamma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(np.concatenate([t.inputs for t in trajs]))
    a = torch.from_numpy(np.concatenate([t.actions for t in trajs]))
    g = torch.from_numpy(np.concatenate([discounted(t.rewards, gamma) for t in trajs]))
    return x, a, g


def reinforce_step(model: ModularMind, opt: torch.optim.Optimizer, trajs: Sequence[Trajectory], cfg: LossConfig,
                   max_grad_norm: float = 1.0) -> dict[str, float]:
    x, a, g = batch_tensors(trajs, cfg.gamma)
    loss, stats = reinforce_loss(model, x, a, g, cfg)
    opt.zero_grad()
    loss.backward()
    stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm))
    opt.step()
    return stats


def behaviour_clone(model: ModularMind, trajs: Sequence[Trajectory], epochs: int, lr: float,
                    batch: int = 256, seed: int = 0) -> float:
    """Fit the policy head to demonstrated actions; returns the final epoch's mean cross-entropy."""
    x, a, _ = batch_tensors(trajs, 0.0)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    last = float("nan")
    for _ in range(epochs):
        perm, total = torch.randperm(len(x), generator=gen), 0.0
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(x[idx])["logits"], a[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        last = total / len(x)
    return last


def trimmed(t: Trajectory, trim: int) -> Trajectory:
    """The trajectory without its last `trim` steps when it ended in a death (the fatal mistakes)."""
    n = max(len(t.actions) - trim, 0) if t.died else len(t.actions)
    return Trajectory(t.level, t.inputs[:n], t.actions[:n], t.rewards[:n], max_x=t.max_x, start_x=t.start_x,
                      flag=t.flag, died=t.died, stalled=t.stalled)


class EliteBuffer:
    """Self-imitation memory: the `per_level` furthest-reaching episodes of each level, minus their
    fatal last steps. The emulator is deterministic, so a lucky sampled run that got further is a
    reproducible demonstration; imitating it ratchets progress much faster than the policy gradient
    alone at the batch sizes this CPU affords."""

    def __init__(self, per_level: int = 2, trim: int = 12):
        self.per_level, self.trim = per_level, trim
        self.best: dict[str, list[Trajectory]] = {}

    def add(self, trajs: Sequence[Trajectory]) -> None:
        for t in trajs:
            keep = self.best.setdefault(t.level, [])
            # newest first among equals (a stable sort keeps that order): once several runs reach the
            # flag, the kept ones are the current policy's, so imitation keeps refreshing
            keep.insert(0, trimmed(t, self.trim))
            keep.sort(key=lambda e: (e.flag, e.max_x), reverse=True)
            del keep[self.per_level:]

    def trajectories(self, weights: dict[str, int] | None = None) -> list[Trajectory]:
        """The kept episodes; a level with weight k appears k times (as it is played k times per batch)."""
        w = weights or {}
        return [t for lv, ts in self.best.items() for t in ts * max(int(w.get(lv, 1)), 1) if len(t.actions)]

    def state(self) -> dict[str, list[Trajectory]]:
        return self.best


def imitation_step(model: ModularMind, opt: torch.optim.Optimizer, trajs: Sequence[Trajectory], coef: float,
                   batch: int = 512, gen: torch.Generator | None = None) -> float:
    """One cross-entropy step towards the actions of `trajs` (a random minibatch of their steps)."""
    x, a, _ = batch_tensors(trajs, 0.0)
    idx = torch.randperm(len(x), generator=gen)[:batch]
    loss = coef * F.cross_entropy(model(x[idx])["logits"], a[idx])
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item() / max(coef, 1e-12)


def degenerate(trajs: Sequence[Trajectory], n_actions: int, max_share: float = 0.95, max_stalled: float = 0.5,
               min_progress: float = 64.0) -> str | None:
    """Why a batch's policy must not be saved (None if it is fine): most episodes ending because Mario
    stood still, hardly any progress, or one action taken nearly always (a collapsed policy)."""
    stalled = float(np.mean([t.stalled for t in trajs]))
    if stalled > max_stalled:
        return f"{stalled:.0%} of episodes stalled"
    progress = float(np.mean([t.max_x - t.start_x for t in trajs]))
    if progress < min_progress:
        return f"mean progress {progress:.0f} px < {min_progress:.0f}"
    acts = np.concatenate([t.actions for t in trajs])
    share = np.bincount(acts, minlength=n_actions) / max(len(acts), 1)
    if share.max() > max_share:
        return f"one action takes {share.max():.0%} of steps"
    return None
