#!/usr/bin/env python3
"""Measure WeST's data path against the 2024 reference's: training and decoding throughput,
memory, FLOPs, on the same models, data and machine.

    python benchmarks/bench_decoding.py --models exp/pretrained --json exp/benchmark.json
    python benchmarks/bench_decoding.py --quick --json /tmp/bench.json   # tiny random models, < 1 min

`--models DIR` is the folder written by `examples/mini/local/prepare_models.py` (also read
from $WEST_OFFLINE_MODELS); `--whisper` / `--llm` name the models one by one. Without either,
tiny random models are built (SmolLM2's tokenizer, 2-layer Qwen2, 2-layer Whisper-shaped
encoder). Without `--data`, espeak-ng utterances are synthesised.

Training paths (measure_training.py): the reference's (30 s padding, LLM sequence padded to
`model_max_length`, random batches), WeST's (real lengths, length-grouped batches) and WeST's
with the encoder cache. Decoding paths (measure_decoding.py): the reference's (batch 1, 30 s,
transformers' `generate`) and WeST's batched search, greedy and beam. FLOPs executed and the
floor the content needs: flop_meter.py; peak memory: rss_monitor.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import platform
import random
import resource
import sys
import time
from pathlib import Path

import torch
import transformers
from flop_meter import FlopMeter
from measure_decoding import bench_decoding
from measure_training import bench_training
from rss_monitor import RssMonitor
from summary_table import format_table
from workload import (
    BenchConfig,
    build_tiny_models,
    default_workdir,
    load_bench_model,
    real_models,
    synthesize_data,
)

from west.data.cache import EncoderCache, fill_cache
from west.data.dataset import read_data, validate
from west.models.build import count_params

logger = logging.getLogger("benchmarks")

QUICK = dict(
    num_utts=6,
    decode_utts=6,
    steps=2,
    batch_size=2,
    decode_batch_size=3,
    max_new_tokens=8,
    projector_hidden_size=32,
    beam_batch1=True,
)


# Integer options that override BenchConfig's fields of the same name.
INT_OPTIONS = (
    "num_utts",
    "decode_utts",
    "steps",
    "batch_size",
    "decode_batch_size",
    "beams",
    "max_new_tokens",
    "model_max_length",
    "projector_hidden_size",
    "seed",
    "threads",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = BenchConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=os.environ.get("WEST_OFFLINE_MODELS"), type=Path)
    p.add_argument("--whisper", help="openai-whisper .pt checkpoint or HF Whisper folder")
    p.add_argument("--llm", help="Hugging Face causal LM folder")
    p.add_argument("--checkpoint", help="trained WeST checkpoint folder (for meaningful WERs)")
    p.add_argument("--data", help="jsonl data list (key, wav, txt)")
    p.add_argument("--workdir", help="tiny models, synthesised speech, the encoder cache")
    p.add_argument("--quick", action="store_true", help="tiny models, few steps: a CI smoke run")
    p.add_argument("--json", type=Path, help="write every figure here")
    for name in INT_OPTIONS:
        p.add_argument(
            f"--{name}", type=int, default=None, help=f"default {getattr(defaults, name)}"
        )
    p.add_argument("--beam_batch1", action="store_true", help="also decode beam search at batch 1")
    return p.parse_args(argv)


def run_benchmark(cfg: BenchConfig) -> dict:
    load_start = os.getloadavg()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    t_start = time.perf_counter()
    workdir = Path(cfg.workdir or default_workdir())
    workdir.mkdir(parents=True, exist_ok=True)
    if cfg.whisper is None or cfg.llm is None:
        cfg.tiny = True
        cfg.whisper, cfg.llm = build_tiny_models(workdir / "tiny_models")
    data = cfg.data or str(synthesize_data(workdir / "speech", cfg.num_utts, cfg.seed))
    model = load_bench_model(cfg)
    utts = validate(read_data(data), tokenizer=model.tokenizer)
    if len(utts) > cfg.num_utts:  # a corpus: a seeded random sample, not its first lines
        utts = random.Random(cfg.seed).sample(utts, cfg.num_utts)
    if not utts:
        raise ValueError(f"{data}: no usable utterances")
    logger.info("%d utterances, %.1f s of audio", len(utts), sum(u.duration for u in utts))

    cache = EncoderCache.for_encoder(workdir / "encoder_cache", model.encoder, pad_to_30s=False)
    for u in utts:  # a fresh first pass each run: its cost is one of the figures
        cache.path(u).unlink(missing_ok=True)
    t0 = time.perf_counter()
    fill_cache(cache, model.encoder, utts, pad_to_30s=False, batch_size=cfg.decode_batch_size)
    cache_s = time.perf_counter() - t0
    cache_bytes = sum(cache.path(u).stat().st_size for u in utts)
    logger.info("encoder cache: %d utterances in %.2f s", len(utts), cache_s)

    with RssMonitor() as rss, FlopMeter(model) as flops:
        train = bench_training(model, utts, cfg, cache, flops, rss)
        decode = bench_decoding(model, utts[: cfg.decode_utts], cfg, flops, rss)

    beam = cfg.beams
    figures = {
        "train_speedup": train["west"]["samples_per_s"] / train["reference"]["samples_per_s"],
        "train_speedup_cached": train["west_cached"]["samples_per_s"]
        / train["reference"]["samples_per_s"],
        "decode_speedup_greedy": decode["west_greedy"]["utt_per_s"]
        / decode["reference_greedy"]["utt_per_s"],
        f"decode_speedup_beam{beam}": decode[f"west_beam{beam}"]["utt_per_s"]
        / decode[f"reference_beam{beam}"]["utt_per_s"],
        "peak_rss_mb": {
            **{f"train/{k}": train[k]["peak_rss_mb"] for k in ("reference", "west", "west_cached")},
            **{f"decode/{k}": v["peak_rss_mb"] for k, v in decode.items() if k != "identical"},
            "process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        },
        "train": train,
        "decode": decode,
        "cache": {
            "build_s": round(cache_s, 3),
            "utterances": len(utts),
            "megabytes": round(cache_bytes / 2**20, 2),
            "dtype": cache.dtype,
            "cached_loss_abs_diff": train.pop("cached_loss_abs_diff"),
        },
        "models": {
            "tiny_random": cfg.tiny,
            "whisper": cfg.whisper,
            "llm": cfg.llm,
            "checkpoint": cfg.checkpoint,
            "encoder_params": count_params(model.encoder),
            "projector_params": count_params(model.projector),
            "llm_params": count_params(model.llm),
            "prompt_tokens": len(model.prompt.prefix_ids) + len(model.prompt.suffix_ids),
        },
        "data": {
            "path": data,
            "utterances": len(utts),
            "audio_s": round(sum(u.duration for u in utts), 2),
        },
        "config": {k: v for k, v in dataclasses.asdict(cfg).items()},
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "loadavg_start": [round(x, 2) for x in load_start],
            "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        },
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    if beam == 5:
        figures["decode_speedup_beam5"] = figures[f"decode_speedup_beam{beam}"]
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("benchmarks").setLevel(logging.INFO)  # progress, on stderr
    cfg = BenchConfig()
    if args.quick:
        cfg = BenchConfig(**QUICK)
    elif args.models and not (args.whisper or args.llm):
        args.whisper, args.llm = real_models(args.models)
    for name in ("whisper", "llm", "checkpoint", "data", "workdir"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    for f in INT_OPTIONS:
        if getattr(args, f) is not None:
            setattr(cfg, f, getattr(args, f))
    cfg.beam_batch1 = cfg.beam_batch1 or args.beam_batch1
    for path in (cfg.whisper, cfg.llm):
        if path is not None and not Path(path).exists():
            print(
                f"{path}: not found; run python examples/mini/local/prepare_models.py "
                "--output_dir DIR",
                file=sys.stderr,
            )
            return 2
    results = run_benchmark(cfg)
    print(format_table(results), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
