"""OpenVINO for the player's batch-1 CPU inference: the same networks, compiled by OpenVINO.

At batch 1 on a CPU, torch spends much of a dream step in per-operator overhead and fp32
convolutions (its bf16 autocast pays for dtype conversions). OpenVINO fuses the graph and runs it in
bf16 where the CPU has bf16 units (docs/benchmarks.md, Player: the figures). Torch stays the reference:
`tests/test_openvino_runtime.py` checks that the two agree.

What is converted is each network's static-shape pass: `Denoiser.denoise` (called once per sampler
step; with the sampler's `reuse_deep`, as two graphs: the first step's, which also returns the UNet's
deep features, and the later steps', which take them) and the upsampler's `_features` (the ResNet at 60x64). The scroll head, the sampler loop and
the palette's gather/argmax stay in torch. Any other batch size or input shape falls back to torch,
so a model wired here still trains and evaluates in batches.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from smbwm import actions as A
from smbwm.models.upsampler import FACTOR
from smbwm.utils.device import cpu_has_bf16
from smbwm.utils.paths import cache_dir


LOW_RES = (60, 64)          # the shape compiled for: a 240x256 NES frame, 4x4 area-averaged (data.lowres.LOW_SHAPE)


class OpenVINOUnavailable(RuntimeError):
    """OpenVINO is not installed, or cannot convert this model; str() is one line."""


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


BACKENDS = ("auto", "torch", "openvino")


def resolve_backend(backend: str, device: torch.device, compile: bool = False) -> str:
    """"torch" or "openvino" for `backend` (auto: OpenVINO on a CPU where it is installed, unless
    torch.compile was asked for); ValueError on a name it does not know."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "openvino" if device.type == "cpu" and not compile and openvino_available() else "torch"
    if backend == "openvino" and compile:
        raise ValueError("torch.compile and the OpenVINO backend exclude each other (pick one)")
    return backend


class _Compiled:
    """A torch method replaced by an OpenVINO compiled model for one set of input shapes; other
    shapes go to the original method."""

    def __init__(self, compiled, shapes: list[tuple[int, ...]], fallback: Callable):
        self.compiled, self.shapes, self.fallback = compiled, shapes, fallback
        self.request = compiled.create_infer_request()

    def __call__(self, *args):
        if len(args) != len(self.shapes) or any(a is None or tuple(a.shape) != s for a, s in zip(args, self.shapes)):
            return self.fallback(*args)
        out = self.request.infer([(a.float() if a.is_floating_point() else a).detach().cpu().numpy() for a in args])
        return torch.from_numpy(np.array(out[0])).to(args[0].device)


class _CompiledDenoise:
    """Denoiser.denoise replaced by OpenVINO graphs at batch 1: the whole pass (keep 0) and, for one
    `keep`, the pass that keeps the deep features and the one that reuses them. Anything else (another
    batch size or keep) goes to torch."""

    def __init__(self, full, shapes: list[tuple[int, ...]], fallback: Callable, keep: int = 0,
                 keeping=None, reusing=None):
        self.shapes, self.fallback, self.keep = shapes, fallback, keep
        self.requests = {name: g.create_infer_request() for name, g in
                         (("full", full), ("keeping", keeping), ("reusing", reusing)) if g is not None}

    def __call__(self, noisy, sigma, obs, prior, act, scroll, sigma_cond=None, keep: int = 0, deep=None):
        args = [noisy, sigma, obs, prior, act, scroll, sigma_cond]
        name = "full" if keep == 0 else ("keeping" if deep is None else "reusing") if keep == self.keep else ""
        if name not in self.requests or any(a is None or tuple(a.shape) != s for a, s in zip(args, self.shapes)):
            return self.fallback(noisy, sigma, obs, prior, act, scroll, sigma_cond, keep, deep)
        inputs = args + ([deep] if name == "reusing" else [])
        out = self.requests[name].infer([(a.float() if a.is_floating_point() else a).detach().cpu().numpy()
                                         for a in inputs])
        d = torch.from_numpy(np.array(out[0])).to(noisy.device)
        return d, (torch.from_numpy(np.array(out[1])).to(noisy.device) if name == "keeping" else None)


class _DenoiseKeeping(nn.Module):
    """Denoiser.denoise keeping the deep features of the UNet's levels below `keep`, as a traceable module."""

    def __init__(self, denoiser: nn.Module, keep: int):
        super().__init__()
        self.denoiser, self.keep = denoiser, keep

    def forward(self, noisy, sigma, obs, prior, act, scroll, sigma_cond):
        return self.denoiser.denoise(noisy, sigma, obs, prior, act, scroll, sigma_cond, self.keep)

    def extra_repr(self) -> str:
        return f"keep={self.keep}"


class _DenoiseReusing(_DenoiseKeeping):
    """Denoiser.denoise running the UNet's top `keep` levels on reused deep features."""

    def forward(self, noisy, sigma, obs, prior, act, scroll, sigma_cond, deep):
        return self.denoiser.denoise(noisy, sigma, obs, prior, act, scroll, sigma_cond, self.keep, deep)[0]


class _Features(nn.Module):
    """The upsampler's ResNet pass without the optional diffusion inputs, as a traceable module."""

    def __init__(self, upsampler: nn.Module):
        super().__init__()
        self.upsampler = upsampler

    def forward(self, prior_full: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        return self.upsampler._features(prior_full, low)


def _cache_key(module: nn.Module, example: tuple[torch.Tensor, ...]) -> str:
    """What the converted graph depends on: the weights, the input shapes, this package's model code
    and the OpenVINO version."""
    import openvino as ov
    h = hashlib.sha256(f"{ov.__version__} {torch.__version__} {type(module).__name__} {module.extra_repr()}".encode())
    for t in example:
        h.update(f"{tuple(t.shape)} {t.dtype}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.read_bytes())
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def _convert(module: nn.Module, example: tuple[torch.Tensor, ...]):
    """The OpenVINO model of `module`, read from the cache when this exact one was converted before:
    tracing takes seconds, reading the saved graph a fraction of one."""
    import openvino as ov
    path = cache_dir() / "openvino" / f"{_cache_key(module, example)}.xml"
    if path.exists() and path.with_suffix(".bin").exists():
        try:
            return ov.Core().read_model(path)
        except RuntimeError:        # a half-written or foreign file: convert again and overwrite it
            pass
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")          # the tracer's notes on shape-dependent Python branches
        model = ov.convert_model(module, example_input=example)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.xml")
        ov.save_model(model, tmp, compress_to_fp16=False)
        tmp.with_suffix(".bin").replace(path.with_suffix(".bin"))
        tmp.replace(path)
    except OSError:                 # a read-only cache only costs the next start its conversion
        pass
    return model


def _compile(module: nn.Module, example: tuple[torch.Tensor, ...], precision: str, threads: int):
    import openvino as ov
    cfg = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": threads,
           "PERFORMANCE_HINT": "LATENCY"}
    return ov.Core().compile_model(_convert(module, example), "CPU", cfg)


def use_openvino(model: nn.Module, bf16: bool, threads: int | None = None, reuse_deep: int = 0) -> nn.Module:
    """Compile `model` (a WorldModel on the CPU) with OpenVINO for batch-1 steps, in place.

    bf16: run in bfloat16 (on CPUs with bf16 units; fp32 otherwise). threads: OpenVINO's CPU
    threads (default: torch's). reuse_deep: the sampler's (SamplerConfig.reuse_deep), whose two passes
    are compiled too. Raises OpenVINOUnavailable if OpenVINO is missing or fails."""
    if not openvino_available():
        raise OpenVINOUnavailable("OpenVINO is not installed (pip install openvino)")
    den, up = model.denoiser, model.upsampler
    if next(den.parameters()).device.type != "cpu":
        raise OpenVINOUnavailable("OpenVINO runs the model on the CPU; this one is on "
                                  f"{next(den.parameters()).device}")
    if isinstance(den.denoise, _CompiledDenoise):
        return model                             # already wired
    (h, w), c, f = LOW_RES, den.cfg.context, FACTOR
    precision, threads = ("bf16" if bf16 else "f32"), int(threads or torch.get_num_threads())
    example = (torch.zeros(1, 3, h, w), torch.full((1,), 1.0), torch.zeros(1, c, 3, h, w), torch.zeros(1, 3, h, w),
               torch.zeros(1, c, A.NUM_PLAYING_BUTTONS), torch.zeros(1, dtype=torch.long), torch.zeros(1))
    try:
        den_ov = _compile(den, example, precision, threads)
        keeping = reusing = None
        if reuse_deep > 0:
            with torch.no_grad():
                deep = den.denoise(*example, keep=reuse_deep)[1]
            keeping = _compile(_DenoiseKeeping(den, reuse_deep), example, precision, threads)
            reusing = _compile(_DenoiseReusing(den, reuse_deep), (*example, torch.zeros_like(deep)), precision, threads)
        up_ov = None
        if not up.cfg.diffusion:                 # the diffusion kind's pass takes noise inputs: left in torch
            up_example = (torch.zeros(1, 3, h * f, w * f), torch.zeros(1, 3, h, w))
            up_ov = _compile(_Features(up), up_example, precision, threads)
    except Exception as e:  # noqa: BLE001 - a converter failure of any kind is one line and torch still works
        raise OpenVINOUnavailable(f"OpenVINO could not compile the model ({type(e).__name__}: "
                                  f"{str(e).splitlines()[0][:200] if str(e) else ''})") from None
    den.denoise = _CompiledDenoise(den_ov, [tuple(t.shape) for t in example], den.denoise, reuse_deep, keeping, reusing)
    if up_ov is not None:
        up._features = _Compiled(up_ov, [(1, 3, h * f, w * f), (1, 3, h, w)], up._features)
    return model


def apply_backend(model: nn.Module, backend: str, device: torch.device, compile: bool = False,
                  reuse_deep: int = 0) -> str:
    """Run `model`'s batch-1 passes on `backend` (auto | torch | openvino; see resolve_backend), in place,
    and return the one in use. OpenVINO runs in bf16 where the CPU has bf16 units. If "auto" picked
    OpenVINO and it fails, torch stays with a warning; an explicit "openvino" raises OpenVINOUnavailable."""
    chosen = resolve_backend(backend, device, compile)
    if chosen != "openvino":
        return chosen
    try:
        use_openvino(model, bf16=cpu_has_bf16(), reuse_deep=reuse_deep)
    except OpenVINOUnavailable as e:
        if backend != "auto":
            raise
        warnings.warn(f"{e}; running the model with torch")
        return "torch"
    return "openvino"
