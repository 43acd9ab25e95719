#!/usr/bin/env python3
"""Seconds per training step of a CTC step and an LLM step, this tree against an older one.

    python benchmarks/bench_train_steps.py --model_dir examples/mini/exp/ctc_compress \
        --data examples/mini/data/train/data.jsonl --baseline_src /tmp/west_old --profile

The model is built from a run folder's west_config.json (its encoder, LLM, projector, CTC
branch and LoRA; random trained parts: the step's cost does not depend on them), the CTC
vocabulary fitted on `--data`'s transcripts as west-train fits it, and the first
`--steps` x `--batch_size` utterances of `--data` are batched in order (encoder outputs
computed beforehand, as the encoder cache gives them). A CTC step is the CTC-only stage's
(no LLM pass), an LLM step the LLM stage's with the speech side fixed (LoRA learns): forward,
backward and AdamW, one warm-up step first. Each tree runs in a process of its own
(`PYTHONPATH=DIR`, `PYTHONSAFEPATH=1`), the two alternating `--rounds` times, so that a
change is measured in one invocation on one machine. `--profile` prints the operators that
took the most time in this tree's steps, with their shapes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def worker(args) -> None:
    import torch

    import west
    from west.config import ModelArguments
    from west.data.batching import collate
    from west.data.dataset import SpeechDataset, read_data, validate
    from west.models.build import build_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(ModelArguments.load(args.model_dir)).train()
    utts = validate(read_data(args.data))
    if model.ctc is not None:
        model.ctc.fit_vocab(model.tokenizer, (u.txt for u in utts))
    n = args.steps * args.batch_size
    dataset = SpeechDataset(utts[:n], model.encoder.n_mels, model.tokenizer)
    batches = [
        collate([dataset[i] for i in range(k, k + args.batch_size)])
        for k in range(0, n, args.batch_size)
    ]
    with torch.no_grad():
        encoded = [model.encode(b["mel"], b["mel_lens"]) for b in batches]
    if args.mode == "llm":  # the speech side fixed, as in the LLM stage
        for part in (model.projector, model.ctc):
            if part is not None:
                part.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    lm_weight = 0.0 if args.mode == "ctc" else None

    def step(batch, enc):
        out = model(text_ids=batch["text_ids"], text_lens=batch["text_lens"], enc=enc[0],
                    enc_lens=enc[1], lm_weight=lm_weight)  # fmt: skip
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()

    step(batches[0], encoded[0])
    t0 = time.perf_counter()
    for batch, enc in zip(batches, encoded):
        step(batch, enc)
    seconds = (time.perf_counter() - t0) / len(batches)
    table = None
    if args.profile:
        from torch.profiler import profile

        with profile(record_shapes=True) as prof:
            for batch, enc in zip(batches[:2], encoded[:2]):
                step(batch, enc)
        table = prof.key_averages(group_by_input_shape=True).table(
            sort_by="self_cpu_time_total", row_limit=10, max_shapes_column_width=50
        )
    print(json.dumps({"west": west.__file__, "seconds": seconds, "table": table}))


def run(args, src: str | None, mode: str, profile: bool) -> dict:
    cmd = [sys.executable, __file__, "--_worker", "--mode", mode, "--model_dir", args.model_dir]
    cmd += ["--data", args.data, "--steps", str(args.steps), "--threads", str(args.threads)]
    cmd += ["--batch_size", str(args.batch_size)] + (["--profile"] if profile else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if src:
        env.update(PYTHONPATH=os.path.abspath(src), PYTHONSAFEPATH="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="a run folder with west_config.json")
    p.add_argument("--data", required=True, help="training data.jsonl")
    p.add_argument("--baseline_src", help="an older checkout of WeST to compare with")
    p.add_argument("--modes", default="ctc,llm")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._worker:
        return worker(args)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    name = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if "Model name" in ln), "?")
    print("command:", " ".join(sys.argv))
    print(f"CPU: {name} ({'AVX-512' if 'avx512f' in cpu else 'AVX2'}), {args.threads} thread(s)")
    trees = {"this tree": None} | ({"baseline": args.baseline_src} if args.baseline_src else {})
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for mode in args.modes.split(","):
            for label, src in trees.items():
                got = run(args, src, mode, args.profile and r == 0 and src is None)
                times.setdefault((mode, label), []).append(got["seconds"])
                print(
                    f"round {r + 1}, {mode} step, {label} ({got['west']}): {got['seconds']:.3f} s"
                )
                if got["table"]:
                    print(got["table"])
    print(f"\n{args.steps} steps of {args.batch_size} utterances per run, best of {args.rounds}:")
    print(
        "| step | "
        + " | ".join(f"{t} s/step" for t in trees)
        + (" | ratio |" if len(trees) > 1 else " |")
    )
    for mode in args.modes.split(","):
        best = [min(times[(mode, t)]) for t in trees]
        ratio = f" | {best[1] / best[0]:.2f}x |" if len(best) > 1 else " |"
        print(f"| {mode} | " + " | ".join(f"{b:.3f}" for b in best) + ratio)


if __name__ == "__main__":
    main()
