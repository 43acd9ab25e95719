"""benchmarks/bench_decoding.py end to end on tiny models, and the FLOP counts it reports."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from flop_meter import FlopMeter
from model_patches import generated_tokens, reference_padding

from west.data.batching import collate
from west.data.dataset import SpeechDataset, read_data, validate
from west.models.build import build_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model(model_args):
    torch.manual_seed(0)
    return build_model(model_args).eval()


@pytest.fixture(scope="module")
def utts(speech_dir):
    return validate(read_data(str(speech_dir / "data.jsonl")))


def _batch(model, utts, pad_to_30s=False):
    ds = SpeechDataset(utts[:3], model.encoder.n_mels, model.tokenizer, pad_to_30s)
    return collate([ds[i] for i in range(3)])


def _math_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **kw):
    """Attention as plain matmuls, which torch's FLOP counter sees (its CPU SDPA it does not)."""
    if kw.get("enable_gqa") and k.shape[1] != q.shape[1]:
        k = k.repeat_interleave(q.shape[1] // k.shape[1], 1)
        v = v.repeat_interleave(q.shape[1] // v.shape[1], 1)
    s = (q @ k.transpose(-1, -2)) * (scale or 1 / math.sqrt(q.shape[-1]))
    if is_causal:
        n, m = q.shape[-2], k.shape[-2]
        s = s.masked_fill(~torch.ones(n, m, dtype=torch.bool).tril(m - n), float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(~attn_mask, -math.inf) if attn_mask.dtype == torch.bool else s + attn_mask
    return s.softmax(-1) @ v


@pytest.mark.parametrize("pad_to_30s", [False, True])
def test_flop_meter_agrees_with_torch_flop_counter(model, utts, monkeypatch, pad_to_30s):
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setattr(F, "scaled_dot_product_attention", _math_sdpa)
    batch = _batch(model, utts, pad_to_30s)
    model.train()
    with FlopMeter(model) as meter, meter.track("train"), FlopCounterMode(display=False) as fc:
        with reference_padding(model, 512):
            model(**batch)["loss"].backward()
    model.zero_grad()
    model.eval()
    assert meter.executed["train"] == pytest.approx(fc.get_total_flops(), rel=0.02)
    for beams in (1, 3):
        with FlopMeter(model) as meter, meter.track("dec"), FlopCounterMode(display=False) as fc:
            model.generate(batch["mel"], batch["mel_lens"], num_beams=beams, max_new_tokens=5)
        assert meter.executed["dec"] == pytest.approx(fc.get_total_flops(), rel=0.02)


@pytest.mark.parametrize("beams", [1, 3])
def test_decode_floor_is_what_one_utterance_alone_executes(model, utts, beams):
    """One utterance, no padding: WeST's search executes exactly the floor, which counts the
    shared prompt start once and the tokens actually generated (end token included)."""
    ds = SpeechDataset(utts[:1], model.encoder.n_mels, model.tokenizer)
    batch = collate([ds[0]])
    with FlopMeter(model) as meter, meter.track("dec"):
        with generated_tokens(model, 6) as counts:
            texts = model.generate(
                batch["mel"], batch["mel_lens"], num_beams=beams, max_new_tokens=6
            )
    assert len(counts) == len(texts) == 1 and 1 <= counts[0] <= 6
    shared, own = len(model.prompt.prefix_ids), len(model.prompt.suffix_ids)
    frames = batch["mel"].shape[-1]
    need = meter.shared_needed(shared) + meter.decode_needed(frames, shared, own, counts[0], beams)
    assert meter.executed["dec"] == pytest.approx(need, rel=1e-9)


def test_reference_padding_keeps_the_loss_and_pads_the_sequence(model, utts):
    batch = _batch(model, utts)
    lengths = []
    hook = model.llm.get_decoder().register_forward_pre_hook(
        lambda m, a, kw: lengths.append(kw["inputs_embeds"].shape[1]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            plain = model(**batch)["loss"]
            with reference_padding(model, 512):
                padded = model(**batch)["loss"]
            again = model(**batch)["loss"]
    finally:
        hook.remove()
    assert lengths[1] == 512 and lengths[0] == lengths[2] < 512
    assert float(padded) == pytest.approx(float(plain), rel=1e-5)
    assert float(again) == float(plain)


def test_quick_benchmark_end_to_end(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_decoding.py"),
        "--quick",
        "--json",
        str(out),
    ]
    proc = subprocess.run(
        cmd + ["--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for text in ("samples/s", "utt/s", "train_speedup", "WeST + encoder cache", "ref beam 5"):
        assert text in proc.stdout
    figures = json.loads(out.read_text())
    for key in (
        "train_speedup",
        "train_speedup_cached",
        "decode_speedup_greedy",
        "decode_speedup_beam5",
        "peak_rss_mb",
    ):
        assert key in figures
    assert figures["models"]["tiny_random"] is True
    for path in ("reference", "west", "west_cached"):
        assert figures["train"][path]["samples_per_s"] > 0
    paths = ("reference_greedy", "west_greedy", "west_greedy_batch1", "reference_beam5")
    for path in (*paths, "west_beam5"):
        assert set(figures["decode"][path]["hyps"]) == set(figures["decode"]["west_greedy"]["hyps"])
    assert figures["decode"]["identical"]["west_greedy_batched_vs_batch1"]["of"] == 6


def test_flop_meter_counts_trained_encoder_blocks(model_args, utts, monkeypatch):
    from torch.utils.flop_counter import FlopCounterMode

    monkeypatch.setattr(F, "scaled_dot_product_attention", _math_sdpa)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(model_args, encoder_trainable_layers=1))
    batch = _batch(model, utts)
    with FlopMeter(model) as meter, meter.track("train"), FlopCounterMode(display=False) as fc:
        model(**batch)["loss"].backward()
    assert meter.top_layers == 1
    assert meter.executed["train"] == pytest.approx(fc.get_total_flops(), rel=0.02)
