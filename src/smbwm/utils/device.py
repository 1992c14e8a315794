"""The one device/precision helper: CUDA if present, else CPU; bf16 autocast where the hardware has
it (AVX-512 BF16 / AMX on CPU: ~6x faster convolutions here with channels_last), fp32 otherwise."""
from __future__ import annotations

import contextlib
import functools

import torch


def pick_device(pref: str = "auto") -> torch.device:
    if pref in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(pref)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {pref!r} requested but CUDA is not available on this machine (use device=cpu)")
    return dev


@functools.lru_cache(maxsize=None)
def cpu_has_bf16() -> bool:
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16"))


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """None means plain fp32. precision: auto | bf16 | fp16 | fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_bf16() else None


def runtime_precision(backend: str, amp: torch.dtype | None) -> str:
    """What a model's convolutions compute in: OpenVINO picks bf16 by itself where the CPU has it; torch
    runs the autocast dtype (None: fp32)."""
    if backend == "openvino":
        return "bf16" if cpu_has_bf16() else "fp32"
    return "fp32" if amp is None else str(amp).removeprefix("torch.")


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def prepare_module(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to device; channels_last memory format (fast convolutions on CPU oneDNN and on CUDA)."""
    return module.to(device=device, memory_format=torch.channels_last)
