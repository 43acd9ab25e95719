"""west-recognize under torchrun: shards by rank, merges in the data's order, resumes.

The model is a random projector on the tiny fixtures (nothing is trained): its texts are
garbage but deterministic, so a 2-process run must give the 1-process run's lines. Batch
size 1 keeps each utterance's arithmetic the same whichever rank decodes it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from west.results import gather_parts, merge, part_files

ROOT = Path(__file__).parents[2]
KEYS = [f"utt{i}" for i in range(6)]  # speech_dir's keys, in its data.jsonl order


@pytest.fixture
def model_dir(random_model_dir):
    return random_model_dir


def _recognize(model_dir, data, result, nproc: int = 1, *extra: str) -> str:
    """Run west-recognize (under torchrun when nproc > 1); returns its log."""
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
        if nproc > 1
        else []
    )
    cmd = [
        sys.executable,
        *launcher,
        "-m",
        "west.bin.recognize",
        "--model_dir",
        str(model_dir),
        "--data_path",
        str(data),
        "--result_path",
        str(result),
        "--batch_size",
        "1",
        "--max_new_tokens",
        "5",
        "--device",
        "cpu",
        "--log_level",
        "DEBUG",
        *extra,
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout + proc.stderr


def _shards(log: str, world: int) -> list[dict[int, list[str]]]:
    """Per decoding pass (one per beam): {rank: the keys it decoded}, from the DEBUG lines."""
    passes: list[dict[int, list[str]]] = []
    for rank, size, keys in re.findall(r"rank (\d+)/(\d+) keys: ?(.*)", log):
        assert int(size) == world
        if not passes or int(rank) in passes[-1]:
            passes.append({})
        passes[-1][int(rank)] = keys.split()
    return passes


def _keys(path) -> list[str]:
    return [line.split(" ", 1)[0] for line in path.read_text(encoding="utf-8").splitlines()]


def test_two_processes_equal_one_in_the_data_order(model_dir, speech_dir, tmp_path):
    data = speech_dir / "data.jsonl"
    single = tmp_path / "single" / "text_beam{beam}"
    multi = tmp_path / "multi" / "text_beam{beam}"
    _recognize(model_dir, data, single, 1, "--num_beams", "1", "2")
    log = _recognize(model_dir, data, multi, 2, "--num_beams", "1", "2")

    for beam in (1, 2):
        one, two = (p.parent / p.name.format(beam=beam) for p in (single, multi))
        assert _keys(two) == KEYS
        assert two.read_text(encoding="utf-8") == one.read_text(encoding="utf-8")
    assert not list((tmp_path / "multi").glob("*.rank*"))

    # Both ranks decoded, each its own half: disjoint, non-empty, together all keys.
    assert re.findall(r"rank 0/2: 3 utterances", log) and re.findall(r"rank 1/2: 3 utterances", log)
    passes = _shards(log, 2)
    assert len(passes) == 2  # one per beam
    for shards in passes:
        assert set(shards) == {0, 1} and all(shards.values())
        assert not set(shards[0]) & set(shards[1])
        assert sorted(shards[0] + shards[1]) == KEYS


def test_resume_keeps_finished_lines_from_any_earlier_run(model_dir, speech_dir, tmp_path):
    result = tmp_path / "dec" / "text"
    result.parent.mkdir()
    # An earlier run of 4 processes was killed: two lines reached the result file, rank 3
    # finished one more and was half-way through writing another.
    result.write_text("utt4 finished four\nutt1 finished one\n", encoding="utf-8")
    (tmp_path / "dec" / "text.rank3").write_text(
        "utt2 finished two\nutt3 half writ", encoding="utf-8"
    )
    log = _recognize(model_dir, speech_dir / "data.jsonl", result, 2)

    lines = result.read_text(encoding="utf-8").splitlines()
    assert _keys(result) == KEYS  # each key once, in the data's order
    kept = {"utt1": "finished one", "utt2": "finished two", "utt4": "finished four"}
    for line in lines:
        key, _, text = line.partition(" ")
        assert text == kept[key] if key in kept else "half" not in text
    assert not list(result.parent.glob("*.rank*"))
    (shards,) = _shards(log, 2)
    assert sorted(shards[0] + shards[1]) == ["utt0", "utt3", "utt5"]
    assert shards[0] and shards[1] and "3 done before" in log


def test_merge_orders_dedups_and_drops_half_lines(tmp_path):
    result = tmp_path / "text"
    result.write_text("b two\na one\nc thr", encoding="utf-8")
    (tmp_path / "text.rank0").write_text("d four\nb again\n", encoding="utf-8")
    (tmp_path / "text.rank12").write_text("e five\nf si", encoding="utf-8")
    (tmp_path / "text.rankX").write_text("not a part file\n", encoding="utf-8")
    assert [p.name for p in part_files(result)] == ["text.rank0", "text.rank12"]
    assert gather_parts(result) == 2 and not part_files(result)
    assert merge(result, ["a", "b", "c", "d"]) == 4
    # The data's order first, then keys it does not list; the first line of a key wins.
    assert result.read_text(encoding="utf-8") == "a one\nb two\nd four\ne five\n"
    assert (tmp_path / "text.rankX").is_file()


def test_decode_sh_launches_torchrun(model_dir, speech_dir, tmp_path):
    """tools/decode.sh --nproc_per_node 2: torchrun runs west-recognize, one shard a rank."""
    exp, data = tmp_path / "exp", tmp_path / "data"
    exp.mkdir()
    for f in model_dir.iterdir():
        (exp / f.name).write_bytes(f.read_bytes())
    (exp / ".train.done").touch()
    (data / "test").mkdir(parents=True)
    (data / "test" / "data.jsonl").write_bytes((speech_dir / "data.jsonl").read_bytes())
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}",
    )
    extra = "--max_new_tokens 5 --batch_size 1 --log_level DEBUG"
    cmd = ["bash", str(ROOT / "tools/decode.sh"), "--nproc_per_node", "2", "--dtype", "float32"]
    cmd += ["--device", "cpu", "--extra", extra, str(exp), str(data), "test"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    # Named by beam and a tag of the other settings (tools/decode_tag.py).
    (out,) = exp.glob("decode_test_beam1_*")
    assert _keys(out / "text") == KEYS and (out / ".done").is_file()
    (shards,) = _shards((out / "decode.log").read_text(), 2)
    assert sorted(shards[0] + shards[1]) == KEYS and shards[0] and shards[1]
