"""benchmarks/bench_gpu.py: its CPU smoke run for real, its FLOP rule, its real shapes.

The smoke run is the GPU run's path on 2 CPU processes: real torchrun, real DeepSpeed
ZeRO-3 over gloo, WeST's own west-train, then bf16 decoding of the trained checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from bench_gpu import (
    QWEN2_1_5B,
    WHISPER_LARGE_V3,
    gpu_peak_tflops,
    model_flops_counter,
    word_level_tokenizer,
    word_pool,
)
from test_bench_decoding import _math_sdpa  # attention torch's FLOP counter sees

from west.models.build import build_model

ROOT = Path(__file__).resolve().parents[2]


# ---- the smoke run ------------------------------------------------------------------------

STEPS, WARMUP, BATCH, DECODE_BATCH, NEW_TOKENS = 3, 1, 2, 4, 8


def _row(text: str, name: str) -> str:
    """The value column of the first printed table row called `name`."""
    match = re.search(rf"^\| {re.escape(name)} \| (.*) \|$", text, re.M)
    assert match, f"no row {name!r} in:\n{text}"
    return match.group(1)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    deepspeed = pytest.importorskip("deepspeed", reason="pip install -e .[deepspeed]")
    work = tmp_path_factory.mktemp("bench_gpu")
    # DeepSpeed's CPU communication op is compiled on first use into a cache keyed by its
    # name only: one folder per DeepSpeed version (as tests/bin/test_distributed_training.py).
    extensions = Path.home() / ".cache" / "torch_extensions" / f"deepspeed-{deepspeed.__version__}"
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        TORCH_EXTENSIONS_DIR=os.environ.get("TORCH_EXTENSIONS_DIR", str(extensions)),
    )
    cmd = [
        sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--smoke",
        "--peak_tflops", "0.05", "--workdir", str(work / "work"), "--json", str(work / "out.json"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc.stdout, json.loads((work / "out.json").read_text()), work / "work"


def test_smoke_trains_on_two_processes(smoke):
    out, figures, work = smoke
    tr = figures["training"]
    assert f"2 processes x {BATCH} utterances, steps {WARMUP + 1}-{STEPS} timed" in out
    # both processes were one run of two, and each says how much memory it needed
    log = (work / "train.log").read_text()
    assert "process 0 of 2" in log and "process 1 of 2" in log
    assert [p["world_size"] for p in tr["peak_memory"]] == [2, 2]
    assert all(p["host_gib"] > 0 and p["gpu_gib"] is None for p in tr["peak_memory"])
    peaks = _row(out, "peak memory per process (west-train's log)")
    for rank, p in enumerate(tr["peak_memory"]):
        assert f"rank {rank}: host {p['host_gib']:.2f} GiB" in peaks
    # each process recorded every step, with utterances of its own
    records = [json.loads((work / "record" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert tr["steps_per_rank"] == [STEPS, STEPS]
    for step in range(STEPS):
        keys = [{u[0] for u in rec["steps"][step]["utterances"]} for rec in records]
        assert [rec["steps"][step]["step"] for rec in records] == [step + 1] * 2
        assert len(keys[0]) == len(keys[1]) == BATCH and not keys[0] & keys[1]
    assert tr["samples"] == (STEPS - WARMUP) * BATCH * 2
    assert (work / "exp" / "model.safetensors").is_file()


def test_smoke_figures_are_positive_and_printed(smoke):
    out, figures, _ = smoke
    tr, de = figures["training"], figures["decoding"]
    printed = {
        "samples/s": (tr["samples_per_second"], ".2f"),
        "LLM tokens/s (prompt + speech + transcript)": (tr["llm_tokens_per_second"], ".1f"),
        "transcript tokens/s": (tr["transcript_tokens_per_second"], ".1f"),
        "model TFLOP/s (all processes)": (tr["tflops_per_second"], ".4g"),
    }
    for name, (value, spec) in printed.items():
        assert value > 0 and _row(out, name) == f"{value:{spec}}", name
    # LLM positions: prompt + speech + transcript, more than the transcript alone
    assert tr["llm_tokens_per_second"] > tr["transcript_tokens_per_second"] > 0
    # MFU against the given CPU peak (0.05 TFLOPS per process, 2 processes)
    assert tr["mfu"] == pytest.approx(tr["tflops_per_second"] / 0.1)
    assert re.search(r"^\| MFU \| [\d.]+ % \|$", out, re.M)
    assert figures["peak_tflops"] == 0.05
    for name in ("torch", "transformers", "deepspeed"):
        assert f"{name} {figures['versions'][name]}" in out
    assert "command: " in out and "--smoke" in out.split("command: ", 1)[1].splitlines()[0]
    assert de["generated_tokens_per_second"] > 0 and de["tflops_per_second"] > 0
    assert _row(out, "generated tokens/s") == f"{de['generated_tokens_per_second']:.1f}"


def test_smoke_decode_runs_every_utterance_to_the_cap(smoke):
    out, figures, _ = smoke
    de = figures["decoding"]
    assert de["batch"] == DECODE_BATCH
    assert de["tokens_per_utterance"] == [NEW_TOKENS] * DECODE_BATCH
    assert de["generated_tokens"] == DECODE_BATCH * NEW_TOKENS
    assert _row(out, "generated tokens") == str(DECODE_BATCH * NEW_TOKENS)
    assert f"batch {DECODE_BATCH}, greedy, {NEW_TOKENS} new tokens each" in out


# ---- the FLOP rule against what torch counts ------------------------------------------------


TRAINED = {
    "projector": {},  # WeST's default: encoder and LLM frozen
    "encoder_top_lora": {"encoder_trainable_layers": 1, "lora_rank": 4},
    "whole_encoder": {"freeze_encoder": False},
}


@pytest.mark.parametrize("setup", list(TRAINED))
def test_train_flops_are_what_one_unpadded_step_executes(setup, model_args, monkeypatch):
    """One utterance alone (no padding), no recomputation: forward + backward as torch's FLOP
    counter sees them equal the rule bench_gpu.py reports MFU with."""
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setattr(F, "scaled_dot_product_attention", _math_sdpa)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(model_args, **TRAINED[setup])).train()
    meter = model_flops_counter(model)
    mel_frames, text = 333, 17
    batch = {
        "mel": torch.randn(1, model.encoder.n_mels, mel_frames),
        "mel_lens": torch.tensor([mel_frames]),
        "text_ids": torch.randint(100, 1000, (1, text)),
        "text_lens": torch.tensor([text]),
    }
    with FlopCounterMode(display=False) as counter:
        model(**batch)["loss"].backward()
    forward, backward = meter.train_flops(mel_frames, text)
    assert forward + backward == pytest.approx(counter.get_total_flops(), rel=1e-3)
    # ... and the frozen LLM costs two forwards (its input gradients), not three
    _, _, t, h = meter.lengths(mel_frames, text)
    assert meter.llm(t, t) + meter.head(h) < forward


# ---- real shapes, tokenizer, GPU table ----------------------------------------------------


def test_full_size_models_have_the_real_parameter_counts():
    from transformers import Qwen2Config, Qwen2ForCausalLM
    from whisper.model import AudioEncoder

    with torch.device("meta"):
        llm = Qwen2ForCausalLM(Qwen2Config(**QWEN2_1_5B))
        d = WHISPER_LARGE_V3
        encoder = AudioEncoder(
            d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], d["n_audio_layer"]
        )
    assert sum(p.numel() for p in llm.parameters()) == 1_543_714_304  # Qwen2-1.5B, tied
    assert llm.get_output_embeddings().weight is llm.get_input_embeddings().weight
    # Whisper large-v3's encoder (conv stem, 32 blocks, final norm)
    assert sum(p.numel() for p in encoder.parameters()) == 635_048_960


def test_word_level_tokenizer_gives_a_working_prompt():
    from west.models.llm import build_prompt

    tok = word_level_tokenizer()
    prompt = build_prompt(tok, "Transcribe the speech")
    assert tok.convert_ids_to_tokens(prompt.end_id) == "<|im_end|>"
    assert prompt.prefix_ids and prompt.suffix_ids
    words = word_pool()[:20]
    ids = tok(" ".join(words), add_special_tokens=False).input_ids
    assert len(ids) == len(words) and tok.unk_token_id not in ids


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H200", 989),
        ("NVIDIA H20", 148),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA A10G", 125),
        ("NVIDIA L4", 121),
        ("NVIDIA L40S", 362),
        ("Tesla T4", None),
    ],
)
def test_gpu_peaks_by_name(name, tflops):
    assert gpu_peak_tflops(name) == tflops
