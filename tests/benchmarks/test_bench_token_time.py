"""benchmarks/bench_token_time.py on tiny random models: it measures WeST's step against the
LLM's own forward, and fails loudly when WeST's step is made slower."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, *flags: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "token_time.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", XDG_CACHE_HOME=str(tmp_path / "cache"))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_token_time.py"), "--quick"]
    cmd += ["--settings", "float32,int8", "--json", str(out), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    return proc, (json.loads(out.read_text()) if out.is_file() else {})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tokenizer_dir):
    """One run with generous limits (tiny models: WeST's own work is a larger share)."""
    tmp = tmp_path_factory.mktemp("token_time")
    return (tmp, *_run(tmp, "--max_overhead", "10", "--max_beam_overhead", "20"))


def test_measures_every_setting_against_the_floor(tiny_run):
    _, proc, results = tiny_run
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert set(results) == {"float32 greedy", "float32 beam 5", "int8 greedy", "int8 beam 5"}
    for key, r in results.items():
        assert r["row_steps"] > 0 and r["tokens"] > 0, key
        assert r["ms_per_row_step"] > 0 and r["floor_ms_per_row_step"] > 0, key
        assert r["overhead"] == pytest.approx(r["ms_per_row_step"] / r["floor_ms_per_row_step"])
    assert "| float32 greedy |" in proc.stdout and "CPU:" in proc.stdout


def test_fails_loudly_when_a_step_gets_slower(tiny_run):
    """A 30 ms sleep in every WeST step (the tiny LLM's step takes a few ms) is a regression
    the check must report, with a non-zero exit status."""
    tmp, _, before = tiny_run
    proc, after = _run(tmp, "--max_overhead", "10", "--max_beam_overhead", "20",
                       "--step_delay_ms", "30")  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "TIME PER TOKEN REGRESSED" in proc.stdout
    for key in ("float32 greedy", "float32 beam 5"):
        assert after[key]["overhead"] > 3 * before[key]["overhead"], key
