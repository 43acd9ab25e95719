"""benchmarks/bench_load.py on the tiny random model, tiny sizes, this tree's server only:
every scenario runs against real west-serve processes and its JSON holds sane measurements.
No timing is asserted: the machine's load decides those."""

from __future__ import annotations

import json

import bench_load
from server_process import MAX_NEW_TOKENS

CONCURRENCY = (2, 4)
REQUESTS = (4, 6)


def test_tiny_run_measures_every_scenario(random_model_dir, speech_dir, tmp_path, capsys):
    out = tmp_path / "load.json"
    argv = [
        "--model_dir", str(random_model_dir), "--data", str(speech_dir / "data.jsonl"),
        f"--flags=--max_new_tokens {MAX_NEW_TOKENS}", "--threads", "1",
        "--concurrency", ",".join(map(str, CONCURRENCY)),
        "--requests", ",".join(map(str, REQUESTS)),
        "--short_s", "0.5,10", "--long_s", "12,15", "--long_files", "2", "--long_share", "0.5",
        "--probe_repeats", "2", "--hol_minutes", "0.667", "--hol_wait_s", "0.5",
        "--memory_requests", "4", "--silence_s", "120",
        "--workdir", str(tmp_path / "work"), "--json", str(out),
    ]  # fmt: skip
    assert bench_load.main(argv) == 0
    printed = capsys.readouterr().out
    for title in ("1. Mixed load", "2. Head-of-line", "3. Memory"):
        assert title in printed, printed
    assert "command: python benchmarks/bench_load.py --model_dir" in printed
    assert "AVX-512: " in printed and "| | after |" in printed  # one side: this tree

    result = json.loads(out.read_text())
    assert result["cpu"]["name"] and isinstance(result["cpu"]["avx512"], bool)
    assert 39 < result["recordings"]["hol_long_s"] < 41
    assert list(result["sides"]) == ["after"]
    side = result["sides"]["after"]
    assert side["west_imported"] == str(bench_load.ROOT / "west" / "__init__.py")

    for c, n in zip(CONCURRENCY, REQUESTS):
        m = side["mixed"][str(c)]
        counted = m["ok"] + m["n503"] + sum(m["other_statuses"].values())
        assert m["requests"] == counted == n, m
        assert m["ok"] > 0 and 0 < m["p50_s"] <= m["p95_s"], m
        assert m["rps"] > 0 and m["audio_s_per_s"] > 0, m
        assert 0 <= m["share503"] <= 1 and m["drain_s"] is not None, m

    hol = side["head_of_line"]
    assert hol["alone_statuses"] == [200, 200] and hol["alone_p50_s"] > 0, hol
    assert hol["under_load_status"] == 200 and hol["under_load_s"] > 0, hol
    assert hol["queue_empty_after_abandon_s"] is not None, hol

    mem = side["memory"]
    assert mem["requests"]["requests"] == 4, mem
    for key in ("startup", "after_requests", "after_silence"):
        assert 0 < mem[key]["rss_mib"] <= mem[key]["hwm_mib"], mem
    assert mem["startup"]["hwm_mib"] <= mem["after_requests"]["hwm_mib"]
    assert mem["after_requests"]["hwm_mib"] <= mem["after_silence"]["hwm_mib"]
    assert [a["requests"] for a in mem["along_requests"]] == [1, 2, 3, 4]
    assert mem["silence"]["status"] is not None and mem["silence"]["sampled_peak_rss_mib"] > 0
