"""The Modular Mind policy in plain numpy: specialists talking through a shared latent.

Each specialist reads a few feature groups (agents/mind_features.py) through a tiny tanh layer and writes
a latent into a shared channel; action owners also push a "drive" for their own buttons (runner ->
right/right+B, jumper -> the A buttons, cautious -> NOOP/left), the others (danger, urgency) act only
through the latent. The summed latent passes a RecursiveLink bridge (a residual ReGLU applied
`bridge_iters` times with shared weights); the coordinator reads it, gates each owner's drives and
adds its own bias per action: logits = sum_j gate_j * drive_j + bias. A value head (used only in
training) reads the same latent. policy/model.py is the torch twin of `forward`; the .npz holds the
parameters under the same names plus the spec as JSON.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from smbwm import actions as A
from smbwm.agents.base import Agent, HeldActions
from smbwm.agents.mind_features import GROUPS, N_STATE_FEATURES, GameState, features_from_state, state_from_level, state_from_ram
from smbwm.utils.paths import POLICY_WEIGHTS, REPO_ROOT, from_repo

DEFAULT_WEIGHTS = str(POLICY_WEIGHTS.relative_to(REPO_ROOT))
TIERS = {"expert": 0.0, "normal": 0.1, "erratic": 0.3}   # tier -> explore (random legal action probability)
STALL_SCALE = 40.0

DEFAULT_SPECIALISTS = [
    {"name": "runner", "groups": ["motion", "memory"], "owns": ["right", "right+B"]},
    {"name": "jumper", "groups": ["motion", "terrain", "gaps", "obstacle", "memory"],
     "owns": ["right+A", "right+B+A", "A"]},
    {"name": "cautious", "groups": ["motion", "enemies", "obstacle"], "owns": ["NOOP", "left"]},
    {"name": "danger", "groups": ["enemies", "gaps", "obstacle"], "owns": []},
    {"name": "urgency", "groups": ["motion", "memory"], "owns": []},
]


def default_spec(action_set: str | Sequence[int] = "simple", hidden: int = 12, latent: int = 16,
                 bridge_hidden: int = 24, bridge_iters: int = 2) -> dict[str, Any]:
    return {"actions": A.action_set(action_set), "hidden": hidden, "latent": latent, "bridge_hidden": bridge_hidden,
            "bridge_iters": bridge_iters, "specialists": DEFAULT_SPECIALISTS}


def groups(spec: dict[str, Any]) -> dict[str, slice]:
    """Feature groups of the full input: the game state, then the agent's memory."""
    n = len(spec["actions"])
    return {**GROUPS, "memory": slice(N_STATE_FEATURES, N_STATE_FEATURES + n + 1)}


def input_size(spec: dict[str, Any]) -> int:
    return N_STATE_FEATURES + len(spec["actions"]) + 1


def specialist_inputs(spec: dict[str, Any]) -> list[np.ndarray]:
    g = groups(spec)
    return [np.concatenate([np.arange(g[k].start, g[k].stop) for k in s["groups"]]) for s in spec["specialists"]]


def owned_indices(spec: dict[str, Any]) -> list[np.ndarray]:
    """Per specialist, the indices (into the action set) of the actions it drives; absent ones skipped."""
    index = {b: i for i, b in enumerate(spec["actions"])}
    return [np.array([index[A.to_byte(n.split("+"))] for n in s["owns"] if A.to_byte(n.split("+")) in index],
                     dtype=np.int64) for s in spec["specialists"]]


def owners(spec: dict[str, Any]) -> list[int]:
    return [j for j, o in enumerate(owned_indices(spec)) if len(o)]


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))          # no overflow warning for large |x|


def forward(params: dict[str, np.ndarray], spec: dict[str, Any], x: np.ndarray) -> dict[str, np.ndarray]:
    """x (B, input_size) -> logits (B, n_actions), value (B,), and the mind's inner activity."""
    x = np.asarray(x, dtype=np.float32)
    ins, owned = specialist_inputs(spec), owned_indices(spec)
    hs, drives, shared = [], [], 0.0
    for s, idx, own in zip(spec["specialists"], ins, owned):
        p = s["name"] + "."
        h = np.tanh(x[:, idx] @ params[p + "w_in"].T + params[p + "b_in"])
        shared = shared + h @ params[p + "w_lat"].T
        hs.append(h)
        drives.append(h @ params[p + "w_drv"].T + params[p + "b_drv"] if len(own) else None)
    s0 = shared
    for _ in range(spec["bridge_iters"]):               # RecursiveLink: residual ReGLU, shared weights
        a = np.maximum(shared @ params["bridge.w_a"].T + params["bridge.b_a"], 0.0)
        b = shared @ params["bridge.w_b"].T + params["bridge.b_b"]
        shared = shared + (a * b) @ params["bridge.w_o"].T + params["bridge.b_o"]
    gates = _sigmoid(shared @ params["coord.w_g"].T + params["coord.b_g"])
    logits = shared @ params["coord.w_c"].T + params["coord.b_c"]
    for k, j in enumerate(owners(spec)):
        logits[:, owned[j]] += gates[:, k:k + 1] * drives[j]
    value = shared @ params["value.w"] + params["value.b"]
    return {"logits": logits, "value": value, "hidden": hs, "latent_in": s0, "latent": shared, "gates": gates}


def init_params(spec: dict[str, Any], seed: int = 0) -> dict[str, np.ndarray]:
    """Small random weights; gates start open and the runner starts with a push to the right."""
    rng = np.random.default_rng(seed)
    H, D, Hb, n = spec["hidden"], spec["latent"], spec["bridge_hidden"], len(spec["actions"])

    def w(o, i, scale=1.0):
        return (rng.standard_normal((o, i)) * scale / np.sqrt(i)).astype(np.float32)

    p: dict[str, np.ndarray] = {}
    for s, idx, own in zip(spec["specialists"], specialist_inputs(spec), owned_indices(spec)):
        k = s["name"] + "."
        p[k + "w_in"], p[k + "b_in"] = w(H, len(idx)), np.zeros(H, np.float32)
        p[k + "w_lat"] = w(D, H, 0.5)
        p[k + "w_drv"], p[k + "b_drv"] = w(len(own), H, 0.5), np.zeros(len(own), np.float32)
    p.update({"bridge.w_a": w(Hb, D), "bridge.b_a": np.zeros(Hb, np.float32), "bridge.w_b": w(Hb, D),
              "bridge.b_b": np.zeros(Hb, np.float32), "bridge.w_o": w(D, Hb, 0.1), "bridge.b_o": np.zeros(D, np.float32),
              "coord.w_g": w(len(owners(spec)), D, 0.1), "coord.b_g": np.full(len(owners(spec)), 2.0, np.float32),
              "coord.w_c": w(n, D, 0.1), "coord.b_c": np.zeros(n, np.float32),
              "value.w": np.zeros(D, np.float32), "value.b": np.zeros((), np.float32)})
    run = spec["actions"].index(A.to_byte(["right", "B"])) if A.to_byte(["right", "B"]) in spec["actions"] else None
    if run is not None:
        p["coord.b_c"][run] = 1.0
    return p


def save_npz(path: str | Path, params: dict[str, np.ndarray], spec: dict[str, Any], **meta: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, __spec__=np.array(json.dumps(spec)), __meta__=np.array(json.dumps(meta, default=str)),
                        **{k: np.asarray(v, np.float32) for k, v in params.items()})
    tmp.replace(path)


def load_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """(params, spec, meta); a relative path is tried from the working directory, then the repo root."""
    p = from_repo(path)
    if not p.exists():
        raise FileNotFoundError(f"Modular Mind weights not found: {path} (train them with python src/train_policy.py)")
    try:
        with np.load(p) as z:
            spec, meta = json.loads(str(z["__spec__"])), json.loads(str(z["__meta__"]))
            params = {k: z[k] for k in z.files if not k.startswith("__")}
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"{p}: not a Modular Mind checkpoint ({e})") from e
    return params, spec, meta


def n_params(params: dict[str, np.ndarray]) -> int:
    return int(sum(np.asarray(v).size for v in params.values()))


class ModularMindAgent(Agent):
    """Plays with the trained Modular Mind. `tier` (expert/normal/erratic) or `explore` sets the
    probability of a random legal action per decision (held for `explore_hold` steps); `greedy`
    takes the most likely action instead of sampling the policy."""

    name = "modular_mind"

    def __init__(self, weights: str = DEFAULT_WEIGHTS, tier: str | None = "normal", explore: float | None = None,
                 greedy: bool = False, explore_hold: int | Sequence[int] = 1, action_set: Any = None,
                 record: bool = False, press_a: bool = True, params: dict | None = None, spec: dict | None = None,
                 seed: int | None = None):
        if params is None:
            params, spec, _ = load_npz(weights)
        if explore is None:
            if tier not in TIERS:
                raise ValueError(f"unknown tier {tier!r}; choose one of {sorted(TIERS)} or set explore")
            explore = TIERS[tier]
        if not 0.0 <= float(explore) <= 1.0:
            raise ValueError(f"explore must be in [0, 1], got {explore}")
        if action_set is not None and A.action_set(action_set) != list(spec["actions"]):
            raise ValueError(f"action_set {action_set} differs from the checkpoint's {[A.name(b) for b in spec['actions']]}")
        super().__init__(list(spec["actions"]), seed)
        self.params, self.spec = params, spec
        self.tier, self.explore, self.greedy, self.record = tier, float(explore), bool(greedy), bool(record)
        self.press_a = bool(press_a)
        self.random_hold = HeldActions(explore_hold)
        self.weights_sha = hashlib.sha1(b"".join(np.ascontiguousarray(params[k]).tobytes()
                                                 for k in sorted(params))).hexdigest()[:12]
        self._reset_state()

    def _reset_state(self) -> None:
        self.prev_index, self.best_x, self.stall = 0, -1, 0
        self.random_hold.clear()
        self.trace: list[dict[str, Any]] = []
        self.last_input: np.ndarray | None = None
        self.last_index = 0
        self.grounded = False

    def reset(self, seed: int | None = None) -> None:
        super().reset(seed)
        self._reset_state()

    def bind(self, env) -> None:
        # The level simulator has no RAM: its live state object (env.state) is read instead.
        self.env = getattr(env, "unwrapped", env)

    def state_of(self, info: dict[str, Any]) -> GameState:
        if info.get("ram") is not None:
            return state_from_ram(info["ram"])
        level_state = getattr(getattr(self, "env", None), "state", None)
        if level_state is not None and hasattr(level_state, "mario"):
            return state_from_level(level_state)
        raise ValueError("ModularMindAgent needs info['ram'] (the emulator) or to be bound to a LevelEnv "
                         "(agent.bind(env)); the collector does both")

    def observe(self, info: dict[str, Any]) -> np.ndarray:
        """The full input vector: game-state features, then memory (last action, stalled time)."""
        state = self.state_of(info)
        self.grounded = state.float_state == 0
        feats = features_from_state(state)
        if state.x > self.best_x:
            self.best_x, self.stall = state.x, 0
        else:
            self.stall += 1
        mem = np.zeros(len(self.actions) + 1, np.float32)
        mem[self.prev_index] = 1.0
        mem[-1] = min(self.stall / STALL_SCALE, 1.0)
        return np.concatenate([feats, mem])

    def _act(self, observation, info: dict[str, Any]) -> int:
        x = self.observe(info)
        randomised = self.random_hold.left > 0 or (self.explore > 0 and self.rng.random() < self.explore)
        probs, out = None, None
        if not randomised or self.record:              # a random choice needs no forward pass
            out = forward(self.params, self.spec, x[None])
            logits = out["logits"][0].astype(np.float64)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
        if randomised:
            i = self.random_hold.next(self.rng, lambda: int(self.rng.integers(len(self.actions))))
        else:
            i = int(np.argmax(probs)) if self.greedy else int(self.rng.choice(len(probs), p=probs))
        sent = self._pressed(i) if not randomised else i
        # last_index is the policy's own choice (what REINFORCE credits); the memory holds what was sent
        self.prev_index, self.last_input, self.last_index = sent, x, i
        if self.record:
            self.trace.append({"hidden": [h[0].copy() for h in out["hidden"]], "latent": out["latent"][0].copy(),
                               "gates": out["gates"][0].copy(), "probs": probs, "action": i, "random": randomised})
        return self.actions[sent]

    def _pressed(self, i: int) -> int:
        """SMB jumps only on an A *press*: when the policy asks for A while Mario stands on the ground
        with A already held, A is let go for this step so its next request is a fresh press. A held A
        on the ground does nothing anyway, so this only turns "keep jumping" into a jump."""
        a_bit = A.BUTTON_BITS["A"]
        byte, prev = self.actions[i], self.actions[self.prev_index]
        if not (self.press_a and self.grounded and byte & a_bit and prev & a_bit):
            return i
        released = byte & ~a_bit
        return self.actions.index(released) if released in self.actions else i


    def episode_attrs(self) -> dict[str, Any]:
        return {"policy_tier": str(self.tier), "policy_explore": self.explore, "policy_weights": self.weights_sha}

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "explore": self.explore, "weights": self.weights_sha}
