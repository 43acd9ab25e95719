"""benchmarks/bench_hotwords.py on tiny random models: every list size and route is decoded
and scored, and an empty list costs nothing and changes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_measures_every_setting(tmp_path, tokenizer_dir):
    table = tmp_path / "table.md"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_hotwords.py"), "--quick"]
    proc = subprocess.run(
        [*cmd, "--output", str(table)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    settings = {(r["model"], r["route"], r["lists"]) for r in rows}
    assert settings == {
        *(("search", "none", f"none ({lists})") for lists in ("true", "N=5")),
        *(("search", "search", lists) for lists in ("true", "N=5")),
        *(("prompt", "none", f"none ({lists})") for lists in ("true", "N=5")),
        *(
            ("prompt", route, lists)
            for route in ("prompt", "search", "both")
            for lists in ("true", "N=5")
        ),
    }
    by = {(r["model"], r["route"], r["lists"]): r for r in rows}
    # the two tiny models share their weights: without lists they decode alike
    assert by["search", "none", "none (N=5)"]["wer"] == by["prompt", "none", "none (N=5)"]["wer"]
    # the same lists in the same search: the same texts whatever the model's prompt training
    assert by["search", "search", "N=5"]["wer"] == by["prompt", "search", "N=5"]["wer"]
    assert all(r["b_words"] > 0 for r in rows)  # every utterance has a name to bias
    assert "decoding time, search search N=5 / none:" in proc.stdout
    assert table.read_text().startswith("| model | route | list | WER | B-WER | U-WER |")
