"""Fault probes of evaluate.py, the player and the level tools (issue 19, points 11 and 12)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, compose
from fault_tools import one_error_line

from smbwm.utils.config_errors import ConfigError


def error_lines(text: str) -> list[str]:
    return [x for x in text.splitlines() if x.startswith("error:")]


# --- evaluate.py ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, words", [
    ("eval.horizons=[1000]", ["horizons", "1000"]),       # used to drop the rollout section silently
    ("denoising_steps=-1", ["denoising_steps"]),
    ("eval.next_frame_samples=-5", ["next_frame_samples"]),
    ("eval.rollouts=-1", ["rollouts"]),
    ("eval.batch_size=0", ["batch_size"]),
    ("eval.horizons=[]", ["horizons"]),
])
def test_bad_evaluate_values_are_one_line(tiny_checkpoint, real_episodes, tmp_path, capsys, override, words):
    from evaluate import run
    cfg = compose("evaluate", [f"checkpoint={tiny_checkpoint}", f"data.dir={real_episodes}", "extra_dirs={}",
                               f"out={tmp_path / 'r.json'}", "eval.next_frame_samples=4", "eval.rollouts=2",
                               "eval.speed_steps=2", "gif=false", override])
    with pytest.raises(ConfigError):
        run(cfg)
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not (tmp_path / "r.json").exists()


def test_a_checkpoint_with_nan_weights_is_refused(tiny_checkpoint, real_episodes, tmp_path):
    import torch
    from safetensors.torch import load_file
    from smbwm.utils.checkpoint import save_tensors
    ck = tmp_path / "ck"
    shutil.copytree(tiny_checkpoint, ck)
    sd = load_file(str(ck / "upsampler.safetensors"))
    k = next(k for k, v in sd.items() if v.is_floating_point())
    sd[k] = torch.full_like(sd[k], float("nan"))
    save_tensors(ck / "upsampler.safetensors", sd)
    r = subprocess.run([sys.executable, "src/evaluate.py", f"checkpoint={ck}", f"data.dir={real_episodes}",
                        "extra_dirs={}", f"out={tmp_path / 'r.json'}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    one_error_line(r.returncode, r.stderr, "NaN", "upsampler.safetensors")
    assert not (tmp_path / "r.json").exists()


# --- the player ----------------------------------------------------------------------------------------
def play(*args) -> int:
    from play import main
    return main([str(a) for a in args])


@pytest.mark.parametrize("argv, words", [
    (["--fps", "nan"], ["--fps"]),
    (["--fps", "inf"], ["--fps"]),
    (["--seed", "-1"], ["--seed"]),
])
def test_bad_player_numbers_are_one_line(tmp_path, capsys, argv, words):
    assert play("--real", "--headless", "--frames", 3, "--out", tmp_path / "o", *argv) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not (tmp_path / "o").exists()


def test_a_binary_actions_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "actions.bin"
    f.write_bytes(bytes(range(256)) * 40)
    assert play("--real", "--headless", "--frames", 3, "--out", tmp_path / "o", "--actions", f) == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "--actions" in err[0] and len(err[0]) < 300, err


@pytest.mark.parametrize("meta", [[1, 2, 3], {"level": "1-1", "replay_actions": "garbage"},
                                  {"level": "1-1", "replay_actions": [0, 300, -1]}])
def test_a_spawn_with_a_bad_meta_json_is_one_line(tiny_spawns, tmp_path, capsys, meta):
    from smbwm.data.spawn import list_spawns
    spawn = tmp_path / "spawn"
    shutil.copytree(list_spawns(tiny_spawns)[0], spawn)
    (spawn / "meta.json").write_text(json.dumps(meta))
    assert play("--real", "--spawn", spawn, "--headless", "--frames", 3, "--out", tmp_path / "o") == 2
    err = error_lines(capsys.readouterr().err)
    assert len(err) == 1 and "meta.json" in err[0], err


# --- level tools ---------------------------------------------------------------------------------------
def run_tool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_generate_level_refuses_a_nan_or_infinite_temperature(tmp_path, value):
    r = run_tool("src/generate_level.py", "some pipes", "--temperature", value, "--out", tmp_path / "o")
    one_error_line(r.returncode, r.stderr, "--temperature")
    assert not (tmp_path / "o").exists()


def test_a_huge_bad_prompt_is_not_echoed_whole(tmp_path):
    r = run_tool("src/generate_level.py", "x" * 96_000, "--out", tmp_path / "o")
    line = one_error_line(r.returncode, r.stderr, "96000 characters")
    assert len(line) < 500


def test_a_one_column_level_cannot_make_a_spawn(tmp_path):
    level = tmp_path / "one.txt"
    level.write_text("-\n" * 13 + "X\n")
    r = run_tool("src/dataset.py", "spawn", "--from", "level", level, tmp_path / "spawn")
    one_error_line(r.returncode, r.stderr, "one.txt")


def test_train_level_gen_refuses_max_steps_below_one(tmp_path):
    r = run_tool("src/train_level_gen.py", f"out_dir={tmp_path / 'lg'}", "max_steps=-1", "wandb.mode=disabled")
    one_error_line(r.returncode, r.stderr, "max_steps")
    assert not (tmp_path / "lg").exists()


def test_train_level_gen_refuses_another_architecture_on_an_existing_out_dir(tmp_path):
    from smbwm.levels.generator import GeneratorConfig
    from smbwm.levels.train import TrainConfig, train
    out = tmp_path / "lg"
    tiny = GeneratorConfig(n_embd=32, n_layer=1, n_head=2, context_columns=6, dropout=0.0)
    train(TrainConfig(out_dir=str(out), batch_size=4, max_steps=1, eval_every=1, save_every=1, corpus_columns=200,
                      eval_batches=1, bf16=False, model=tiny))
    before = (out / "model.safetensors").read_bytes()
    r = run_tool("src/train_level_gen.py", f"out_dir={out}", "model.n_embd=48", "model.n_head=2", "max_steps=2",
                 "corpus_columns=200", "wandb.mode=disabled")
    one_error_line(r.returncode, r.stderr, "n_embd=48", "resume=false")
    assert (out / "model.safetensors").read_bytes() == before
