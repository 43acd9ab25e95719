#!/usr/bin/env python3
"""Measure WeST's data path against the seed's: training and decoding throughput, memory, FLOPs.

    python tools/benchmark.py --models exp/pretrained --json exp/benchmark.json
    python tools/benchmark.py --quick --json /tmp/bench.json      # tiny random models, < 1 min

`--models DIR` is the folder written by `python -m west.bin.prepare_offline_models` (also read
from $WEST_OFFLINE_MODELS); `--whisper` / `--llm` name the models one by one. Without either,
tiny random models are built (SmolLM2's tokenizer, 2-layer Qwen2, 2-layer Whisper-shaped
encoder). Without `--data`, espeak-ng utterances are synthesised. See west/benchmark.py for
what each figure means.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from west.benchmark import BenchConfig, format_table, run_benchmark
from west.bin.prepare_offline_models import LLM_NAME, WHISPER_NAME

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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("west.benchmark").setLevel(logging.INFO)  # progress, on stderr
    cfg = BenchConfig()
    if args.quick:
        cfg = BenchConfig(**QUICK)
    elif args.models and not (args.whisper or args.llm):
        args.whisper = str(args.models / WHISPER_NAME)
        args.llm = str(args.models / LLM_NAME)
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
                f"{path}: not found; run python -m west.bin.prepare_offline_models", file=sys.stderr
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
