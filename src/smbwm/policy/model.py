"""The torch twin of agents.modular_mind.forward, for training; parameters share the .npz names."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from smbwm.agents.modular_mind import owned_indices, owners, specialist_inputs


def _key(name: str) -> str:
    return name.replace(".", "__")        # ParameterDict keys may not contain dots


class ModularMind(nn.Module):
    def __init__(self, spec: dict[str, Any], params: dict[str, np.ndarray]):
        super().__init__()
        self.spec = spec
        self.p = nn.ParameterDict({_key(k): nn.Parameter(torch.tensor(np.asarray(v, np.float32))) for k, v in params.items()})
        for j, idx in enumerate(specialist_inputs(spec)):
            self.register_buffer(f"in_{j}", torch.as_tensor(idx, dtype=torch.long), persistent=False)
        self.owned = [torch.as_tensor(o, dtype=torch.long) for o in owned_indices(spec)]
        self.owners = owners(spec)

    def w(self, name: str) -> torch.Tensor:
        return self.p[_key(name)]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        hs, drives, shared = [], [], 0.0
        for j, s in enumerate(self.spec["specialists"]):
            k = s["name"] + "."
            h = torch.tanh(x[:, getattr(self, f"in_{j}")] @ self.w(k + "w_in").T + self.w(k + "b_in"))
            shared = shared + h @ self.w(k + "w_lat").T
            hs.append(h)
            drives.append(h @ self.w(k + "w_drv").T + self.w(k + "b_drv") if len(self.owned[j]) else None)
        for _ in range(self.spec["bridge_iters"]):
            a = torch.relu(shared @ self.w("bridge.w_a").T + self.w("bridge.b_a"))
            b = shared @ self.w("bridge.w_b").T + self.w("bridge.b_b")
            shared = shared + (a * b) @ self.w("bridge.w_o").T + self.w("bridge.b_o")
        gates = torch.sigmoid(shared @ self.w("coord.w_g").T + self.w("coord.b_g"))
        logits = shared @ self.w("coord.w_c").T + self.w("coord.b_c")
        for k, j in enumerate(self.owners):
            add = torch.zeros_like(logits).index_add(1, self.owned[j], gates[:, k:k + 1] * drives[j])
            logits = logits + add
        # The baseline reads a detached latent: its regression must not pull the policy's features around.
        value = shared.detach() @ self.w("value.w") + self.w("value.b")
        return {"logits": logits, "value": value, "hidden": hs, "latent": shared, "gates": gates}

    def numpy_params(self) -> dict[str, np.ndarray]:
        return {k.replace("__", "."): v.detach().cpu().numpy().copy() for k, v in self.p.items()}
