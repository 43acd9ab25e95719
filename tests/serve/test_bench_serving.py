"""benchmarks/bench_serving.py --quick: two real west-serve processes (tiny random models),
driven at every concurrency, print a complete table of sane figures. No timing is asserted:
the machine's load decides those."""

from __future__ import annotations

import math
import re

import bench_serving


def test_quick_run_prints_every_row_with_sane_numbers(tmp_path, capsys):
    assert bench_serving.main(["--quick", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^CPU: \S.*, \d+ cores usable; load average", out, re.MULTILINE), out
    assert "model: tiny random models" in out
    assert "--max_batch_size 16 (batched) vs 1 (one at a time)" in out

    lines = out.splitlines()
    head = lines.index(next(x for x in lines if x.startswith("| concurrency |")))
    rows = [x.strip("|").split("|") for x in lines[head + 2 : head + 2 + 3]]
    assert [int(r[0]) for r in rows] == list(bench_serving.CONCURRENCY), out
    for r in rows:
        rps, p50, p95, per_batch, rps1, p50_1, p95_1 = (float(x) for x in r[1:8])
        gain = float(r[8].strip().removesuffix("x"))
        assert rps > 0 and rps1 > 0, r
        assert 0 < p50 <= p95 and 0 < p50_1 <= p95_1, r
        assert 1 <= per_batch <= min(int(r[0]), 16), r  # batches hold what is in flight
        assert math.isclose(gain, rps / rps1, rel_tol=0.02, abs_tol=0.01), r
    assert re.search(r"^target: at concurrency 16, .*: (met|NOT met) \(\d+\.\d\dx\)$", out, re.M)
