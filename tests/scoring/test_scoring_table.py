"""Results tables from decode folders built on the fly."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from west.scoring.table import (
    ResultsError,
    beam_table,
    describe,
    load_experiment,
    read_wer_file,
    results_table,
)

REPO = Path(__file__).resolve().parents[2]


def kaldi_wer(wer: float) -> str:
    return (
        f"%WER {wer:.2f} [ 1 / 10, 0 ins, 0 del, 1 sub ]\n"
        "%SER 10.00 [ 1 / 10 ]\nScored 10 sentences, 0 not present in hyp.\n"
    )


def add_decode(exp: Path, testset: str, beam: int, text: str, tag: str = "") -> None:
    d = exp / f"decode_{testset}_beam{beam}{'_' + tag if tag else ''}"
    d.mkdir(parents=True)
    (d / "wer").write_text(text, encoding="utf-8")


@pytest.fixture
def exps(tmp_path):
    """Two experiments: one described by west_config.json, one only by its folder name."""
    a = tmp_path / "exp10"
    a.mkdir()
    (a / "west_config.json").write_text(
        json.dumps(
            {
                "llm_model_name_or_path": "Qwen/Qwen2-7B-Instruct",
                "whisper_model_name_or_path": "/models/whisper/large-v3.pt",
                "projector": "conv1d",
                "projector_params": 17_320_000,
            }
        )
    )
    add_decode(a, "test_clean", 1, kaldi_wer(3.63) + "%WER raw/filtered 3.63/2.83 (2 ...)\n")
    add_decode(a, "test_clean", 5, kaldi_wer(3.10))
    add_decode(a, "test_other", 1, kaldi_wer(8.18))
    add_decode(a, "test_other", 5, kaldi_wer(7.95))
    b = tmp_path / "exp2_Qwen2-1.5B-whisper-tiny-linear"
    add_decode(b, "test_clean", 3, kaldi_wer(9.50))
    add_decode(b, "test_clean", 5, kaldi_wer(9.20))
    add_decode(b, "test_other", 1, kaldi_wer(20.00))
    (b / "decode_test_other_beam1" / "text").write_text("u1 x\n")  # other files are ignored
    return a, b


def cells(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]


def test_results_table_rows_columns_and_beam_choice(exps):
    a, b = exps
    rows = cells(results_table([load_experiment(b), load_experiment(a)], beam=1))
    assert rows[0] == ["Exp", "LLM", "Speech Encoder", "Projector", "test_clean", "test_other"]
    assert set(rows[1][0]) == {"-"}
    assert rows[2] == [
        "1",
        "exp2_Qwen2-1.5B",
        "Whisper tiny 39M",
        "linear",
        "9.20 (beam 5)",
        "20.00",
    ]
    assert rows[3] == [
        "2", "Qwen2-7B-Instruct", "Whisper large-v3 1.5G", "conv1d 17.32M", "3.63/2.83", "8.18",
    ]  # fmt: skip
    best = cells(results_table([load_experiment(a)], beam=None))
    assert best[2][4:] == ["3.10 (beam 5)", "7.95 (beam 5)"]


def test_table_is_padded_markdown(exps):
    table = results_table([load_experiment(p) for p in exps])
    lines = table.splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header
    assert all(line.startswith("| ") or line.startswith("|-") for line in lines)


def test_beam_table(exps):
    a, b = exps
    rows = cells(beam_table([load_experiment(a), load_experiment(b)], metric="CER"))
    assert rows[0] == ["beam_size", "1", "3", "5"]
    assert rows[2:] == [
        ["CER test_clean (Exp 1)", "3.63/2.83", "-", "3.10"],
        ["CER test_other (Exp 1)", "8.18", "-", "7.95"],
        ["CER test_clean (Exp 2)", "-", "9.50", "9.20"],
        ["CER test_other (Exp 2)", "20.00", "-", "-"],
    ]
    single = cells(beam_table([load_experiment(b)]))
    assert single[0] == ["beam_size", "1", "3", "5"]
    assert [r[0] for r in single[2:]] == ["WER test_clean", "WER test_other"]


def test_beam_table_labels_each_test_set_with_its_metric(exps):
    a, _ = exps
    table = beam_table([load_experiment(a)], metric="WER", metrics={"test_other": "CER"})
    assert [r[0] for r in cells(table)[2:]] == ["WER test_clean", "CER test_other"]


def test_cli_metric_per_test_set(exps):
    a, _ = exps
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "tools" / "results_table.py"), str(a)]
    proc = subprocess.run(
        cmd + ["--metric", "test_other=CER"], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    rows = cells(proc.stdout.split("\n\n")[1])
    assert [r[0] for r in rows[2:]] == ["WER test_clean", "CER test_other"]
    proc = subprocess.run(
        cmd + ["--metric", "CER", "--metric", "test_clean=WER"],
        capture_output=True,
        text=True,
        env=env,
    )
    rows = cells(proc.stdout.split("\n\n")[1])
    assert [r[0] for r in rows[2:]] == ["WER test_clean", "CER test_other"]
    proc = subprocess.run(cmd + ["--metric", "=CER"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "TESTSET=METRIC, got '=CER'" in proc.stderr


def test_read_wer_file_variants(tmp_path):
    path = tmp_path / "wer"
    path.write_text("%WER 12.50 [ 1 / 8, 0 ins, 1 del, 0 sub ] [PARTIAL]\n")
    assert read_wer_file(path) == ("12.50", None)
    path.write_text("garbage\n")
    with pytest.raises(ResultsError, match=r"wer: no '%WER"):
        read_wer_file(path)


def test_folder_name_without_whisper(tmp_path):
    (tmp_path / "my_run").mkdir()
    assert describe(tmp_path / "my_run") == ("my_run", "-", "-")


def test_cli_sorts_and_writes_output(exps, tmp_path):
    a, b = exps
    out = tmp_path / "results.md"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, str(REPO / "tools" / "results_table.py"), str(a), str(b)]
    proc = subprocess.run(cmd + ["--output", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == proc.stdout
    rows = cells(proc.stdout.split("\n\n")[0])
    assert [r[1] for r in rows[2:]] == ["exp2_Qwen2-1.5B", "Qwen2-7B-Instruct"]  # exp2 < exp10
    proc = subprocess.run(cmd + ["--keep_order"], capture_output=True, text=True, env=env)
    rows = cells(proc.stdout.split("\n\n")[0])
    assert [r[1] for r in rows[2:]] == ["Qwen2-7B-Instruct", "exp2_Qwen2-1.5B"]
    proc = subprocess.run(
        cmd[:2] + [str(tmp_path / "nope")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 1 and "nope: not a directory" in proc.stderr


def test_config_in_latest_checkpoint_and_projector_size_from_weights(tmp_path):
    exp = tmp_path / "run"
    for step, projector in ((100, "linear"), (900, "conv1d")):
        ckpt = exp / f"checkpoint-{step}"
        ckpt.mkdir(parents=True)
        config = {"llm_model_name_or_path": "Qwen2-0.5B", "whisper_model_name_or_path": "small"}
        (ckpt / "west_config.json").write_text(json.dumps({**config, "projector": projector}))
    tensors = {
        "projector.conv.weight": np.zeros((896, 768, 5), dtype=np.float32),  # 3,440,640
        "projector.conv.bias": np.zeros((896,), dtype=np.float32),
        "llm.lora_A.weight": np.zeros((8, 896), dtype=np.float32),  # not the projector
    }
    save_file(tensors, str(exp / "checkpoint-900" / "model.safetensors"))
    assert describe(exp) == ("Qwen2-0.5B", "Whisper small 244M", "conv1d 3.44M")
    (exp / "checkpoint-900" / "model.safetensors").write_bytes(b"not safetensors")
    assert describe(exp) == ("Qwen2-0.5B", "Whisper small 244M", "conv1d")


FINAL = "final_west_ctc0_bfloat16_tok200"
CTC = "final_west_ctc0.5_bfloat16_tok200"


def test_decodes_with_other_settings_are_other_rows(tmp_path):
    """Tagged folders (tools/decode.sh) and an old untagged one: a row per setting."""
    exp = tmp_path / "Qwen2-1.5B-whisper-tiny-conv1d"
    add_decode(exp, "test_clean", 1, kaldi_wer(9.00))  # an older run's folder
    add_decode(exp, "test_clean", 1, kaldi_wer(8.00), FINAL)
    add_decode(exp, "test_clean", 5, kaldi_wer(7.00), FINAL)
    add_decode(exp, "test_clean", 1, kaldi_wer(6.00), CTC)
    add_decode(exp, "test_other", 1, kaldi_wer(12.00), CTC)
    e = load_experiment(exp)
    assert e.tags() == ["", CTC, FINAL]  # natural order: ctc0.5 < ctc0_
    assert {(d.testset, d.beam, d.tag) for d in e.decodes} >= {("test_clean", 5, FINAL)}

    rows = cells(results_table([e], beam=1))
    assert rows[0][4:] == ["Decoding", "test_clean", "test_other"]
    assert [r[4:] for r in rows[2:]] == [
        ["-", "9.00", "-"],
        [CTC, "6.00", "12.00"],
        [FINAL, "8.00", "-"],
    ]
    assert cells(results_table([e], beam=None))[4][5] == "7.00 (beam 5)"
    rows = cells(beam_table([e]))
    assert rows[2:] == [
        ["WER test_clean", "9.00", "-"],
        [f"WER test_clean {CTC}", "6.00", "-"],
        [f"WER test_other {CTC}", "12.00", "-"],
        [f"WER test_clean {FINAL}", "8.00", "7.00"],
    ]


def test_test_set_names_with_beam_in_them_are_parsed(tmp_path):
    exp = tmp_path / "run"
    add_decode(exp, "dev_beam_x", 3, kaldi_wer(5.00), "ckpt-200_hf_ctc0_float32_tok50")
    (d,) = load_experiment(exp).decodes
    assert (d.testset, d.beam, d.tag) == ("dev_beam_x", 3, "ckpt-200_hf_ctc0_float32_tok50")
