"""Kill tests: training and decoding killed with SIGKILL resume with nothing lost or repeated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import kill_when, repeat_keys

ENV = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")


@pytest.fixture(scope="module")
def many_utts(speech_dir, tmp_path_factory) -> Path:
    """24 utterances (the 6 recordings under 4 keys each), so an epoch has many steps."""
    return repeat_keys(speech_dir / "data.jsonl", tmp_path_factory.mktemp("many") / "data.jsonl", 4)


def _train_cmd(tiny_llm, tiny_whisper, data, exp, max_steps):
    return [
        sys.executable,
        "-m",
        "west.bin.train",
        "--llm_model_name_or_path",
        str(tiny_llm),
        "--whisper_model_name_or_path",
        str(tiny_whisper),
        "--projector_hidden_size",
        "32",
        "--data_path",
        str(data),
        "--output_dir",
        str(exp),
        "--per_device_train_batch_size",
        "2",
        "--max_steps",
        str(max_steps),
        "--save_steps",
        "3",
        "--save_strategy",
        "steps",
        "--learning_rate",
        "1e-3",
        "--lr_scheduler_type",
        "cosine",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--log_utterance_keys",
        "True",
        "--dataloader_num_workers",
        "0",
        "--seed",
        "7",
    ]


def _run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _order(exp: Path) -> dict[int, str]:
    """step -> keys; a step redone after a kill keeps its last record."""
    order = {}
    for line in (exp / "utterance_keys.rank0.txt").read_text().splitlines():
        step, keys = line.split(" ", 1)
        order[int(step)] = keys
    return order


def _lr_and_steps(exp: Path) -> list[tuple[int, float]]:
    state = json.loads((exp / "trainer_state.json").read_text())
    return [(h["step"], h["learning_rate"]) for h in state["log_history"] if "loss" in h]


def test_training_killed_resumes_same_steps_schedule_and_order(
    tiny_llm, tiny_whisper, many_utts, tmp_path
):
    steps = 10  # 12 batches an epoch: the kill lands mid-epoch
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    _run(_train_cmd(tiny_llm, tiny_whisper, many_utts, whole, steps))

    cmd = _train_cmd(tiny_llm, tiny_whisper, many_utts, broken, steps)
    killed = kill_when(
        cmd, ENV, lambda: (broken / "checkpoint-3" / "west_complete").is_file(), timeout=300
    )
    assert killed, "training finished before it could be killed"
    assert not (broken / "checkpoint-9").exists()
    _run(cmd)  # same command: resumes from the newest complete checkpoint

    assert _order(broken) == _order(whole)
    assert sorted(_order(whole)) == list(range(1, steps + 1))
    # Same step counter and learning-rate schedule position at every logged step.
    whole_lr = dict(_lr_and_steps(whole))
    broken_lr = dict(_lr_and_steps(broken))
    assert sorted(broken_lr) == list(range(1, steps + 1))
    for step, lr in broken_lr.items():
        assert lr == pytest.approx(whole_lr[step], rel=1e-6)
    # Within the epoch no utterance is seen twice (epoch = first 12 steps > 10).
    keys = " ".join(_order(broken)[s] for s in range(1, steps + 1)).split()
    assert len(keys) == len(set(keys))


def test_checkpoint_without_marker_is_never_resumed(tiny_llm, tiny_whisper, many_utts, tmp_path):
    exp = tmp_path / "exp"
    _run(_train_cmd(tiny_llm, tiny_whisper, many_utts, exp, 3))
    # A kill during saving leaves a folder without the completion marker.
    fake = exp / "checkpoint-6"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"partial")
    _run(_train_cmd(tiny_llm, tiny_whisper, many_utts, exp, 5))
    assert (exp / "incomplete-checkpoint-6").is_dir()
    state = json.loads((exp / "trainer_state.json").read_text())
    assert state["global_step"] == 5
    assert [s for s, _ in _lr_and_steps(exp)] == [1, 2, 3, 4, 5]


def test_decoding_killed_resumes_with_one_line_per_key(random_model_dir, many_utts, tmp_path):
    def cmd(result):
        return [
            sys.executable,
            "-m",
            "west.bin.recognize",
            "--model_dir",
            str(random_model_dir),
            "--data_path",
            str(many_utts),
            "--result_path",
            str(result),
            "--batch_size",
            "1",
            "--max_new_tokens",
            "6",
        ]

    whole, broken = tmp_path / "whole.txt", tmp_path / "broken.txt"
    _run(cmd(whole))

    def some_lines():
        return broken.is_file() and broken.read_text().count("\n") >= 3

    assert kill_when(cmd(broken), ENV, some_lines, timeout=300), (
        "decoding finished before it could be killed"
    )
    # Simulate a kill in the middle of writing a line too.
    with open(broken, "a") as f:
        f.write("half_written_key some wor")
    _run(cmd(broken))
    lines = broken.read_text(encoding="utf-8").splitlines()
    keys = [line.split(" ", 1)[0] for line in lines]
    assert len(keys) == len(set(keys)) == 24
    assert sorted(lines) == sorted(whole.read_text(encoding="utf-8").splitlines())
