"""The text-to-level generator: tiny training runs, KV-cached sampling, the CLI, the pretrained-layout loader."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from smbwm.levels.generate import DEFAULT_CHECKPOINT, LevelGenerator, SampleConfig
from smbwm.levels.generator import (N_PREFIX, TILE_TOKENS, GeneratorConfig, build_model, decode_tiles, encode,
                              load_checkpoint, GeneratorError)
from smbwm.levels.level import HEIGHT, TILES, load_level, parse_level
from smbwm.levels.prompts import prompt_of
from smbwm.levels.sampling import sample_tokens
from smbwm.levels.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
TINY = GeneratorConfig(n_embd=32, n_layer=1, n_head=2, context_columns=6, dropout=0.0)


def tiny_cfg(out: Path, steps: int) -> TrainConfig:
    return TrainConfig(out_dir=str(out), batch_size=16, lr=3e-3, warmup_steps=3, max_steps=steps, eval_every=10,
                       save_every=10, corpus_columns=400, eval_batches=2, bf16=False, model=TINY)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lg")
    return out, train(tiny_cfg(out, 40))


def test_training_loss_falls_and_checkpoint_has_no_pickle(tiny_run):
    out, hist = tiny_run
    vals = [h["val_loss"] for h in hist if "val_loss" in h]
    assert hist[0]["loss"] > 2.0  # ~log(27) at init
    assert len(vals) == 4 and vals[-1] < vals[0] - 0.3 and hist[-1]["loss"] < hist[0]["loss"] - 0.8
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == \
        ["level_gen.json", "model.safetensors", "optimizer.safetensors", "train_summary.json"]
    assert json.loads((out / "level_gen.json").read_text())["step"] == 40


def test_training_resumes_from_its_checkpoint(tiny_run, tmp_path):
    out, hist = tiny_run
    copy = tmp_path / "resume"
    copy.mkdir()
    for p in out.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    more = train(tiny_cfg(copy, 45))
    assert [h["step"] for h in more[-5:]] == [41, 42, 43, 44, 45]
    assert more[:40] == hist  # the earlier history travels with the checkpoint
    assert more[-1]["loss"] < hist[0]["loss"] - 0.8  # continued from trained weights and optimizer state


def test_encoding_puts_the_prompt_first_then_columns_bottom_up():
    lvl = parse_level("\n".join(["o" + "-" * 2] + ["-" * 3] * 11 + ["XXX"] * 2))
    ids = encode(lvl, prompt_of(lvl))
    assert len(ids) == N_PREFIX + 3 * HEIGHT
    assert TILE_TOKENS[ids[N_PREFIX]] == "X" and TILE_TOKENS[ids[N_PREFIX + HEIGHT - 1]] == "o"
    assert decode_tiles(ids[N_PREFIX:]) == lvl


def test_kv_cached_sampling_matches_full_recompute():
    torch.manual_seed(0)
    model = build_model(TINY).eval()
    prefix = torch.tensor([[14, 18, 22, 25]])
    out = sample_tokens(model, prefix, 30, max_positions=TINY.n_positions, allowed=torch.arange(14),
                        temperature=1.0, top_k=0, generator=torch.Generator().manual_seed(1))
    # replay the same draws without a cache: same random stream, logits from the full sequence
    g, seq = torch.Generator().manual_seed(1), prefix
    mask = torch.full((model.config.vocab_size,), float("-inf"))
    mask[:14] = 0
    with torch.no_grad():
        for _ in range(30):
            probs = torch.softmax(model(input_ids=seq).logits[:, -1].float() + mask, -1)
            seq = torch.cat([seq, torch.multinomial(probs, 1, generator=g)], 1)
    assert torch.equal(out, seq[:, 4:])


def test_samples_longer_than_the_context_are_valid_levels(tiny_run):
    gen = LevelGenerator.load(tiny_run[0])
    levels = gen.generate(["many pipes, some enemies, low elevation", "no pipes"],
                          SampleConfig(columns=20, temperature=1.0, top_k=5), seed=3)  # context is 6 columns
    assert len(levels) == 2
    for lvl in levels:
        assert lvl.width == 20 and lvl.height == HEIGHT
        assert set("".join(lvl.rows)) <= set(TILES) and parse_level(lvl.text()) == lvl
    again = gen.generate(["many pipes, some enemies, low elevation", "no pipes"],
                         SampleConfig(columns=20, temperature=1.0, top_k=5), seed=3)
    assert again == levels


def test_checkpoint_errors_are_one_line(tmp_path):
    with pytest.raises(GeneratorError, match="not a level generator checkpoint"):
        load_checkpoint(tmp_path)


def _run(args, env=None, cwd=None):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900,
                          env={**os.environ, **(env or {})}, cwd=cwd)


def test_cli_with_the_shipped_generator(tmp_path):
    assert (DEFAULT_CHECKPOINT / "model.safetensors").stat().st_size < 8_000_000
    r = _run([str(ROOT / "src" / "generate_level.py"), "many pipes, some enemies, low elevation",
              "--columns", "30", "--seed", "1", "--out", str(tmp_path / "o")], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lvl = load_level(tmp_path / "o" / "level.txt")
    assert lvl.width == 30
    assert Image.open(tmp_path / "o" / "level.png").size == (30 * 16, HEIGHT * 16)
    # the shipped model has learned the corpus' look: solid ground in the bottom row
    assert lvl.rows[-1].count("X") > 15


@pytest.mark.parametrize("args, fragment", [
    (["lots of pipes"], "cannot read 'lots of pipes'"),
    (["no blocks"], "'no' is not a blocks amount"),
    (["some pipes", "--columns", "0"], "--columns must be between"),
    (["some pipes", "--temperature", "0"], "--temperature must be > 0"),
    (["some pipes", "--checkpoint", "/nonexistent"], "not a level generator checkpoint"),
])
def test_cli_bad_input_is_one_line(args, fragment, tmp_path):
    r = _run([str(ROOT / "src" / "generate_level.py"), *args, "--out", str(tmp_path)])
    assert r.returncode == 2 and fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


# --- MarioGPT's pretrained layout, on a tiny model saved the same way ----------------------------------

def _save_tiny_mariogpt(root: Path) -> tuple[Path, Path]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import BartConfig, BartModel, BartTokenizerFast, GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast
    from smbwm.levels.corpus import corpus_level

    def bpe(texts, specials):
        t = Tokenizer(models.BPE())
        t.pre_tokenizer, t.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
        t.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        return t
    # like MarioGPT: a GPT-2 byte-level BPE trained on the level text (one character per item: no merges)
    t = bpe([list("".join(corpus_level().to_columns()[:300]))], ["<|endoftext|>"])
    tok = GPT2TokenizerFast(tokenizer_object=t, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                            unk_token="<|endoftext|>")
    lm = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                                    add_cross_attention=True))
    lm_dir, enc_dir = root / "Mario-GPT2-700-context-length", root / "bart-base"
    tok.save_pretrained(lm_dir)
    lm.save_pretrained(lm_dir)
    t.model.save(str(lm_dir))  # vocab.json + merges.txt, as in the hub repo
    t2 = bpe(["many pipes, some enemies, little blocks, low elevation, no high"] * 3,
             ["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    t2.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    etok = BartTokenizerFast(tokenizer_object=t2, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                             unk_token="<unk>", mask_token="<mask>")
    enc = BartModel(BartConfig(vocab_size=len(etok), d_model=32, encoder_layers=1, decoder_layers=1,
                               encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                               decoder_ffn_dim=64, max_position_embeddings=64))
    etok.save_pretrained(enc_dir)
    enc.save_pretrained(enc_dir)
    return lm_dir, enc_dir


def test_pretrained_loader_on_a_tiny_model_in_the_same_layout(tmp_path):
    from smbwm.levels.pretrained import PretrainedMarioGPT
    lm_dir, enc_dir = _save_tiny_mariogpt(tmp_path)
    assert {"config.json", "vocab.json", "merges.txt", "tokenizer.json"} <= {p.name for p in lm_dir.iterdir()}
    gen = PretrainedMarioGPT.load(str(lm_dir), str(enc_dir))
    memory = gen.encode_prompts(["many pipes, no enemies", "no pipes, many enemies"])
    assert memory.shape == (2, 1, 32) and not torch.allclose(memory[0], memory[1])
    levels = gen.generate(["many pipes, no enemies", "no pipes, many enemies"], columns=60, seed=0)  # > 672 tokens
    assert [lvl.width for lvl in levels] == [60, 60] and all(lvl.height == HEIGHT for lvl in levels)
    assert levels[0].tile(0, HEIGHT - 1) == "X"  # MarioGPT's seed tile, bottom of column 0
    assert levels == gen.generate(["many pipes, no enemies", "no pipes, many enemies"], columns=60, seed=0)


def test_pretrained_cli_from_the_hub_cache_offline(tmp_path):
    """The hub id resolves from a Hugging Face cache (models--<org>--<name>/snapshots/<rev>), offline."""
    lm_dir, enc_dir = _save_tiny_mariogpt(tmp_path / "src")
    cache = tmp_path / "hub"
    for repo, d in [("shyamsn97/Mario-GPT2-700-context-length", lm_dir), ("facebook/bart-base", enc_dir)]:
        base = cache / ("models--" + repo.replace("/", "--"))
        rev = "0" * 40
        (base / "refs").mkdir(parents=True)
        (base / "refs" / "main").write_text(rev)
        d.rename(base / "snapshots" / rev) if (base / "snapshots").mkdir() is None else None
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    r = _run([str(ROOT / "src" / "generate_level.py"), "some pipes", "--pretrained",
              "shyamsn97/Mario-GPT2-700-context-length", "--columns", "12", "--out", str(tmp_path / "o")], env=env)
    assert r.returncode == 0, r.stderr
    assert load_level(tmp_path / "o" / "level.txt").width == 12
    r = _run([str(ROOT / "src" / "generate_level.py"), "some pipes", "--pretrained", "someone/not-cached",
              "--out", str(tmp_path / "o")], env=env)
    assert r.returncode == 2 and "cannot load the level tokenizer from 'someone/not-cached'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
