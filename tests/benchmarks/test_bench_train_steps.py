"""benchmarks/bench_train_steps.py on a tiny random model: both steps timed, in both trees."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_times_ctc_and_llm_steps_in_this_tree_and_a_baseline(model_args, speech_dir, tmp_path):
    import dataclasses

    from ctc_models import write_ctc_model_dir

    run = write_ctc_model_dir(
        dataclasses.replace(model_args, lora_rank=4), tmp_path / "run", ["a b c"], vocab="full"
    )
    baseline = tmp_path / "old"
    baseline.symlink_to(ROOT)  # another path to a tree: the worker must import west from it
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_train_steps.py"), "--model_dir",
           str(run), "--data", str(speech_dir / "data.jsonl"), "--steps", "2", "--batch_size",
           "2", "--rounds", "1", "--baseline_src", str(baseline), "--profile"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for mode in ("ctc", "llm"):
        assert re.search(rf"{mode} step, this tree \({re.escape(str(ROOT))}/west/", out), out
        assert re.search(rf"{mode} step, baseline \({re.escape(str(baseline))}/west/", out), out
        row = re.search(rf"^\| {mode} \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+)x \|$", out, re.M)
        assert row and float(row[1]) > 0 and float(row[2]) > 0, out
    assert "aten::" in out  # the profile of this tree's steps
