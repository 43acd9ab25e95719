#!/usr/bin/env python3
"""Time per generated token: WeST's search against the LLM's own forward, and a loud failure
when WeST's share of it grows.

    python benchmarks/bench_token_time.py --model_dir examples/mini/exp/ctc_compress \
        --data examples/mini/data/test/data.jsonl
    python benchmarks/bench_token_time.py --quick     # tiny random models, under a minute

A decoding step of WeST's search (west.models.search) is one LLM forward over the running
rows plus WeST's own work around it: the KV cache's bookkeeping, the attention mask, choosing
tokens, the repetition guard, dropping finished rows, and (beam search) ranking candidates and
the CTC prefix scores. The floor it is measured against runs in the same process, on the
same model, after the same prefill: transformers' forward with its own KV cache, one token per
row per step, with the batch shrinking exactly as the search's did (the rows it ran at each
step are recorded), and nothing else. The ratio of the two times per row-step is WeST's
overhead, a figure that does not depend on the machine; the script exits with status 1 and
says so in capitals when it exceeds `--max_overhead` (greedy) or `--max_beam_overhead` (beam
search with joint CTC scores). `--step_delay_ms` adds a sleep to every WeST step: a regression
on purpose, to see the check fail.

Also printed, per setting (greedy, beam; float32, int8 weights, bfloat16 where the CPU
computes it natively): seconds per utterance, milliseconds per generated token and per
row-step, the prefill's seconds. Name the CPU beside absolute figures (printed first).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from transformers import DynamicCache
from workload import build_tiny_models, default_workdir, synthesize_data

from west.data.audio import load_audio
from west.loader import load_model
from west.models import search as west_search
from west.transcriber import Transcriber


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return platform.processor() or "unknown CPU"
    name = next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), "")
    flags = next((ln for ln in out.splitlines() if ln.startswith("Flags")), "")
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{name or platform.processor()} ({isa}; torch kernels: {torch.backends.cpu.get_cpu_capability()})"


class StepLog:
    """Rows per WeST step and the time the steps took (prefill excluded), recorded around
    west.models.search.Rows while a search runs."""

    def __init__(self, delay_s: float = 0.0):
        self.runs: list[list[int]] = []  # per batch (one prefill each), its rows per step
        self.prefill_s = 0.0
        self.steps_s = 0.0
        self.delay_s = delay_s
        self._init, self._step = west_search.Rows.__init__, west_search.Rows.step

    def __enter__(self):
        log = self

        def init(rows, *args, **kwargs):
            t0 = time.perf_counter()
            log._init(rows, *args, **kwargs)
            log.prefill_s += time.perf_counter() - t0
            log.runs.append([])
            log._t = time.perf_counter()

        def step(rows, tokens):
            log.runs[-1].append(len(tokens))
            if log.delay_s:
                time.sleep(log.delay_s)
            return log._step(rows, tokens)

        west_search.Rows.__init__, west_search.Rows.step = init, step
        return self

    def mark_end(self) -> None:
        self.steps_s += time.perf_counter() - self._t

    def __exit__(self, *exc):
        west_search.Rows.__init__, west_search.Rows.step = self._init, self._step


@torch.inference_mode()
def floor_seconds(model, inputs: torch.Tensor, rows: list[int]) -> float:
    """transformers' forward with its KV cache, one token per row, the batch shrinking as
    `rows` says: the time of the steps alone."""
    llm = model.llm
    cache = DynamicCache(config=llm.config)
    llm(inputs_embeds=inputs[: rows[0]], past_key_values=cache, use_cache=True, logits_to_keep=1)
    tokens = torch.full((rows[0], 1), 42, dtype=torch.long)
    t0 = time.perf_counter()
    for n in rows:
        if n < tokens.shape[0]:
            cache.batch_select_indices(torch.arange(n))
            tokens = tokens[:n]
        logits = llm(input_ids=tokens, past_key_values=cache, use_cache=True, logits_to_keep=1)
        tokens = logits.logits[:, -1].argmax(-1, keepdim=True)
    return time.perf_counter() - t0


def measure(transcriber: Transcriber, samples, batch: int, beams: int, delay: float):
    """Decode `samples` in batches; returns the figures of one setting."""
    texts, log = [], StepLog(delay)
    t0 = time.perf_counter()
    with log:
        for k in range(0, len(samples), batch):
            texts += transcriber.decode_windows(samples[k : k + batch], num_beams=beams)
            log.mark_end()
    total = time.perf_counter() - t0
    tokens = sum(len(transcriber.model.tokenizer(t).input_ids) for t in texts)
    return {"seconds": total, "texts": texts, "tokens": tokens, "log": log}


def floor_for(transcriber: Transcriber, samples, batch: int, log: StepLog) -> float:
    """The floor's seconds for the rows `log` recorded, batch by batch."""
    model = transcriber.model
    seconds = 0.0
    for i, rows in enumerate(log.runs):
        if not rows:
            continue
        mel, lens = transcriber.features(samples[i * batch : (i + 1) * batch])
        with torch.inference_mode():
            speech, speech_lens = model.speech_embeddings(mel, lens)
            inputs, _, _ = model._assemble(*model.llm_speech(speech, speech_lens), None, True)
        if inputs.shape[0] < rows[0]:  # beams: the rows fan out after the prefill
            inputs = inputs.repeat_interleave(-(-rows[0] // inputs.shape[0]), 0)
        seconds += floor_seconds(model, inputs, rows)
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", help="a WeST model folder (west_config.json + model.safetensors)")
    p.add_argument("--data", help="data.jsonl of utterances to decode (default: espeak-ng)")
    p.add_argument("--quick", action="store_true", help="tiny random models, few utterances")
    p.add_argument("--utts", type=int, default=32)
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--beams", type=int, default=5)
    p.add_argument("--max_new_tokens", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--settings", default="float32,int8,bfloat16", help="comma-separated")
    p.add_argument("--max_overhead", type=float, default=1.5)
    p.add_argument("--max_beam_overhead", type=float, default=3.0)
    p.add_argument("--step_delay_ms", type=float, default=0.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print("command:", " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]))
    print(f"CPU: {cpu_name()}; {args.threads} torch thread(s)")

    work = default_workdir() / "token_time"
    if args.quick:
        whisper, llm = build_tiny_models(work / "models")
        model_dir, overrides = (
            None,
            {
                "whisper_model_name_or_path": whisper,
                "llm_model_name_or_path": llm,
                "projector_hidden_size": 64,
                "system_prompt": None,
            },
        )
        args.utts, args.batch_size = min(args.utts, 6), min(args.batch_size, 3)
    elif args.model_dir:
        model_dir, overrides = args.model_dir, {}
    else:
        p.error("give --model_dir (or --quick)")
    data = args.data or synthesize_data(work / "speech", args.utts)
    lines = [json.loads(line) for line in Path(data).read_text().splitlines() if line.strip()]
    samples = [load_audio(u["wav"]) for u in lines[: args.utts]]
    samples.sort(key=len, reverse=True)  # as the Transcriber batches: little padding

    native_bf16 = torch.backends.cpu.get_cpu_capability() == "AVX512" and "avx512_bf16" in (
        Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    )
    results, failed = {}, []
    for setting in args.settings.split(","):
        if setting == "bfloat16" and not native_bf16:
            print("bfloat16: skipped (no native bf16 on this CPU: slower than float32 here)")
            continue
        dtype = torch.bfloat16 if setting == "bfloat16" else torch.float32
        if setting == "int8":
            overrides["quantize"] = "int8"
        model = load_model(model_dir, dtype=dtype, **overrides)
        overrides.pop("quantize", None)
        ctc = 0.5 if model.ctc is not None else 0.0
        for name, beams, weight in (("greedy", 1, 0.0), (f"beam {args.beams}", args.beams, ctc)):
            tr = Transcriber(model, beams, args.batch_size, args.max_new_tokens, ctc_weight=weight)
            tr.decode_windows(samples[:2])  # warm-up
            delay = args.step_delay_ms / 1000
            got = measure(tr, samples, args.batch_size, beams, delay)
            log = got["log"]
            row_steps = sum(map(sum, log.runs))
            floor = floor_for(tr, samples, args.batch_size, log)
            ratio = (log.steps_s / row_steps) / (floor / row_steps)
            key = f"{setting} {name}" + (f" ctc {weight:g}" if weight else "")
            results[key] = {
                "s_per_utt": got["seconds"] / len(samples),
                "ms_per_token": 1000 * got["seconds"] / max(got["tokens"], 1),
                "ms_per_row_step": 1000 * log.steps_s / row_steps,
                "floor_ms_per_row_step": 1000 * floor / row_steps,
                "overhead": ratio,
                "prefill_s": log.prefill_s,
                "row_steps": row_steps,
                "tokens": got["tokens"],
            }
            limit = args.max_overhead if beams == 1 else args.max_beam_overhead
            if ratio > limit:
                failed.append(f"{key}: {ratio:.2f} x the LLM's own step (limit {limit})")
            if setting == "float32" and name == "greedy":
                reference_texts = got["texts"]
            elif name == "greedy" and "reference_texts" in locals():
                same = sum(a == b for a, b in zip(got["texts"], reference_texts))
                results[key]["same_text_as_float32"] = f"{same}/{len(samples)}"
    print(
        f"\n{len(samples)} utterances, batch {args.batch_size}, at most {args.max_new_tokens} tokens"
    )
    print("| setting | s/utt | ms/token | ms/row-step | floor ms/row-step | overhead | prefill s |")
    print("|---|---|---|---|---|---|---|")
    for key, r in results.items():
        print(
            f"| {key} | {r['s_per_utt']:.3f} | {r['ms_per_token']:.1f} | {r['ms_per_row_step']:.2f}"
            f" | {r['floor_ms_per_row_step']:.2f} | {r['overhead']:.2f} | {r['prefill_s']:.2f} |"
        )
    for key, r in results.items():
        if "same_text_as_float32" in r:
            print(f"{key}: greedy texts equal to float32's: {r['same_text_as_float32']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    if failed:
        print("\nTIME PER TOKEN REGRESSED: WeST's decoding step costs more than allowed over the")
        print("LLM's own forward:\n  " + "\n  ".join(failed))
        return 1
    print(f"\nok: WeST's step within {args.max_overhead} x (greedy) and {args.max_beam_overhead} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
