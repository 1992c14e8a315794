"""Ablation: the denoiser's OpenVINO graph quantized to INT8 (NNCF post-training quantization) against
the float graph, on the same spawns, seeds and hands-on input ("→, A now and then").

    pip install nncf                     # not a dependency of the project: this script alone uses it
    python scripts/ablate_int8.py [--checkpoint DIR] [--spawns 0,2,4] [--steps 300] [--threads 1] [--out DIR]

Calibration inputs are the denoiser's own inputs while the float dream plays the hands-on input from
each spawn (`--calibration-steps` steps each); the quantized graph replaces the float one inside the
same WorldModelEnv, so everything else (sampler, Mario check, upsampler, snaps) is the player's. Prints
one row per spawn and variant: Mario shown, camera travel, the longest camera stop and the denoiser's
milliseconds per game step, the agreement of the two graphs' outputs per noise level, and writes the frames
at steps 60, 150 and the last, float above INT8, to --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from smbwm.envs.world_model_env import WorldModelEnv
from smbwm.evaluation.playability import PlayabilityConfig, frame_playability, hands_on_actions


def play(env: WorldModelEnv, spawn: int, actions: np.ndarray) -> tuple[np.ndarray, float]:
    """The shown frames (T+1, 240, 256, 3) and the denoiser's median ms per step."""
    obs, _ = env.reset(seed=0, options={"spawn": spawn})
    frames, ms = [obs], []
    for a in actions:
        obs, _, _, _, info = env.step(int(a))
        frames.append(obs)
        ms.append(info.get("timings_ms", {}).get("denoiser", np.nan))
    return np.stack(frames), float(np.nanmedian(ms))


def record_inputs(env: WorldModelEnv, spawns: list[int], actions: np.ndarray) -> list[list[torch.Tensor]]:
    """The denoiser's batch-1 inputs while the dream plays (what the graph is calibrated on)."""
    den, seen = env.model.denoiser, []
    inner = den.denoise

    def recording(*args, **kw):
        seen.append([a.detach().clone() for a in args[:7]])
        return inner(*args, **kw)
    den.denoise = recording
    try:
        for s in spawns:
            play(env, s, actions)
    finally:
        den.denoise = inner
    return seen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--spawns", default="0,2,4", help="spawn indices, comma-separated")
    p.add_argument("--steps", type=int, default=300, help="steps of hands-on play per spawn and variant")
    p.add_argument("--calibration-steps", type=int, default=40, help="steps per spawn whose inputs calibrate")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="int8_ablation")
    a = p.parse_args()
    try:
        import nncf
        import openvino as ov
    except ImportError as e:
        print(f"error: this ablation needs {e.name} (pip install nncf openvino)", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    spawns = [int(s) for s in a.spawns.split(",")]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = WorldModelEnv(a.checkpoint, backend="openvino", max_episode_steps=10**6, end_episodes=False, lost_end_steps=0)
    if env.sampler.reuse_deep:
        print("error: the ablation quantizes the whole-pass graph; run it with a sampler without reuse_deep", file=sys.stderr)
        return 2
    actions = hands_on_actions(a.steps, PlayabilityConfig())
    calib = record_inputs(env, spawns, actions[:a.calibration_steps])

    def feed(inputs):
        return [t.float().numpy() if t.is_floating_point() else t.numpy() for t in inputs]

    compiled = env.model.denoiser.denoise                      # openvino_runtime._CompiledDenoise
    float_request = compiled.requests["full"]
    model = float_request.get_compiled_model()
    from smbwm.models.openvino_runtime import _convert
    quantized = nncf.quantize(_convert(env.model.denoiser, tuple(calib[0])), nncf.Dataset(calib, feed),
                              subset_size=len(calib))
    cfg = {k: model.get_property(k) for k in ("INFERENCE_PRECISION_HINT", "INFERENCE_NUM_THREADS")}
    int8_request = ov.Core().compile_model(quantized, "CPU", cfg).create_infer_request()

    agree: dict[float, list[float]] = {}
    for inputs in calib[::3]:
        x = np.array(float_request.infer(feed(inputs))[0])
        y = np.array(int8_request.infer(feed(inputs))[0])
        agree.setdefault(round(float(inputs[1][0]), 2), []).append(10 * np.log10(4 / max(((x - y) ** 2).mean(), 1e-12)))
    print("| noise level | INT8 vs float denoiser output, PSNR (dB), median |\n|---|---|")
    for s in sorted(agree):
        print(f"| {s} | {np.median(agree[s]):.1f} |")

    print("\n| spawn | graph | Mario shown | copies | camera travel (px) | longest stop | denoiser ms |\n|---|---|---|---|---|---|---|")
    for s in spawns:
        shown = {}
        for name, request in (("float", float_request), ("int8", int8_request)):
            compiled.requests["full"] = request
            frames, ms = play(env, s, actions)
            f = frame_playability(frames)
            shown[name] = frames
            print(f"| {env.spawn.path.name} | {name} | {f['mario_shown_fraction']:.1%} | {f['mario_copies_fraction']:.1%} | "
                  f"{f['camera_travel_px']} | {f['longest_camera_stop']} | {ms:.0f} |", flush=True)
        pick = [60, 150, a.steps]
        rows = [np.concatenate([shown[n][min(t, a.steps)] for t in pick], 1) for n in ("float", "int8")]
        Image.fromarray(np.concatenate(rows, 0)).save(out / f"spawn{s}.png")
    compiled.requests["full"] = float_request
    return 0


if __name__ == "__main__":
    sys.exit(main())
