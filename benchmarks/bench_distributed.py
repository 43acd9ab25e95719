#!/usr/bin/env python3
"""Training speed and memory per process under torchrun: plain DDP, DeepSpeed ZeRO-2, ZeRO-3.

    python benchmarks/bench_distributed.py --models exp/pretrained --nproc_per_node 2
    python benchmarks/bench_distributed.py --quick            # tiny random models, a few minutes

Each back-end trains the same model on the same data for `--steps` steps with `west-train`
under `torchrun --nproc_per_node N` (on a machine without GPUs: N CPU processes over gloo;
DeepSpeed uses its CPU accelerator). DeepSpeed configs are the recipes' own
(examples/librispeech/conf/ds_config_zero3.json, and the same at stage 2). Printed per
back-end: steps per second (transformers' train_steps_per_second, which leaves out loading
and the first save), the loss after the last step (the back-ends train the same model: it
should agree), and each process's peak memory as west-train logs it; ratios are against
DDP in the same invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from workload import ROOT, build_tiny_models, real_models, synthesize_data

ZERO3 = ROOT / "examples" / "librispeech" / "conf" / "ds_config_zero3.json"


def zero2_config(out: Path) -> Path:
    conf = json.loads(ZERO3.read_text())
    zero = {k: v for k, v in conf["zero_optimization"].items() if not k.startswith("stage3")}
    conf["zero_optimization"] = {**zero, "stage": 2}
    path = out / "ds_config_zero2.json"
    path.write_text(json.dumps(conf, indent=2))
    return path


def train(args, whisper: str, llm: str, data: Path, exp: Path, deepspeed: Path | None) -> dict:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(args.nproc_per_node), "-m", "west.bin.train",
        "--llm_model_name_or_path", llm, "--whisper_model_name_or_path", whisper,
        "--data_path", str(data), "--output_dir", str(exp),
        "--per_device_train_batch_size", str(args.batch_size), "--max_steps", str(args.steps),
        "--save_strategy", "no", "--logging_steps", "1", "--report_to", "none",
        "--learning_rate", "1e-4", "--gradient_checkpointing", "True",
        "--dataloader_num_workers", "0", "--seed", "1", *args.extra.split(),
    ]  # fmt: skip
    if deepspeed:
        cmd += ["--deepspeed", str(deepspeed)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    log = proc.stdout + proc.stderr
    (exp / "benchmark.log").write_text(log)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\nfailed:\n{log[-4000:]}")
    state = json.loads((exp / "trainer_state.json").read_text())
    summary = next(h for h in reversed(state["log_history"]) if "train_steps_per_second" in h)
    losses = [h["loss"] for h in state["log_history"] if "loss" in h]
    peaks = sorted(
        (int(r), float(gib))
        for r, gib in re.findall(r"process (\d+) of \d+: peak host memory ([\d.]+) GiB", log)
    )
    return {
        "steps_per_second": summary["train_steps_per_second"],
        "final_loss": losses[-1],
        "peak_host_gib": [gib for _, gib in peaks],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("--models", type=Path, help="folder of prepare_models.py (real models)")
    p.add_argument("--quick", action="store_true", help="tiny random models")
    p.add_argument("--nproc_per_node", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch_size", type=int, default=4, help="utterances per process and step")
    p.add_argument("--num_utts", type=int, default=64)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--extra", default="", help="more west-train flags, e.g. '--lora_rank 8'")
    p.add_argument("--backends", default="ddp,zero2,zero3")
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if not args.models and not args.quick:
        p.error("give --models DIR (examples/mini/local/prepare_models.py) or --quick")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="west_bench_dist_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.models:
        whisper, llm = real_models(args.models)
    else:
        whisper, llm = build_tiny_models(work / "models")
    data = synthesize_data(work / "data", args.num_utts)
    configs = {"ddp": None, "zero2": zero2_config(work), "zero3": ZERO3}
    results = {}
    for name in args.backends.split(","):
        print(f"{name}: training {args.steps} steps ...", file=sys.stderr, flush=True)
        results[name] = train(args, whisper, llm, data, work / f"exp_{name}", configs[name])

    base = results.get("ddp")
    print(f"\n{args.nproc_per_node} processes x {args.batch_size} utterances, {args.steps} steps, "
          f"{args.threads} thread(s) each; models: {llm}, {whisper}\n")  # fmt: skip
    print(
        "| back-end | steps/s | x DDP | loss at the last step | peak host memory per process (GiB) |"
    )
    print("|---|---|---|---|---|")
    for name, r in results.items():
        ratio = f"{r['steps_per_second'] / base['steps_per_second']:.2f}" if base else ""
        peaks = " / ".join(f"{g:.2f}" for g in r["peak_host_gib"])
        print(
            f"| {name} | {r['steps_per_second']:.3f} | {ratio} | {r['final_loss']:.4f} | {peaks} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
