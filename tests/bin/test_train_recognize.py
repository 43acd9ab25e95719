"""The entry points end to end: west-train (one process), west-recognize.

Several processes (torchrun, DeepSpeed): test_distributed_training.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from west.bin.train import parse_args
from west.config import ModelArguments

REFERENCE_FLAGS = """--bf16 False --num_train_epochs 5 --per_device_train_batch_size 2
--per_device_eval_batch_size 1 --gradient_accumulation_steps 1 --evaluation_strategy no
--save_strategy steps --save_steps 2 --save_total_limit 10 --learning_rate 3e-4
--weight_decay 0.01 --adam_beta2 0.95 --warmup_ratio 0.01 --lr_scheduler_type cosine
--logging_steps 1 --report_to none --model_max_length 512 --gradient_checkpointing
--dataloader_num_workers 2 --dataloader_prefetch_factor 2""".split()


def _model_flags(tiny_llm, tiny_whisper):
    return [
        "--llm_model_name_or_path",
        str(tiny_llm),
        "--whisper_model_name_or_path",
        str(tiny_whisper),
        "--projector_hidden_size",
        "32",
    ]


def _run(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_reference_command_line_parses(tmp_path):
    model, data, args = parse_args(
        [
            "--llm_model_name_or_path",
            "Qwen2-1.5B-Instruct",
            "--whisper_model_name_or_path",
            "tiny",
            "--data_path",
            "train.jsonl",
            "--output_dir",
            str(tmp_path),
        ]
        + REFERENCE_FLAGS
    )
    assert model.whisper_model_name_or_path == "tiny" and data.data_path == "train.jsonl"
    assert args.eval_strategy == "no" and args.warmup_steps == 0.01
    assert args.gradient_checkpointing and args.model_max_length == 512


def test_yaml_config_then_flags_override(tmp_path):
    conf = tmp_path / "exp.yaml"
    conf.write_text(
        "projector: linear\nprojector_hidden_size: 512\nlearning_rate: 1.0e-3\nlora_rank: 8\n"
    )
    model, _, args = parse_args(
        ["--config", str(conf), "--projector_hidden_size", "256", "--output_dir", str(tmp_path)]
    )
    assert (model.projector, model.projector_hidden_size, model.lora_rank) == ("linear", 256, 8)
    assert args.learning_rate == 1e-3


def test_conf_blocks_from_yaml_and_json_flags(tmp_path):
    """`ctc_conf` and `projector_conf` blocks: a yaml mapping, or JSON on the command line
    (a later flag replaces the whole block); both round-trip through west_config.json."""
    conf = tmp_path / "exp.yaml"
    conf.write_text(
        "projector: transformer\nprojector_conf:\n  num_layers: 3\n  dropout: 0.0\n"
        "ctc_conf:\n  weight: 1.0\n  vocab: train\n"
    )
    model, _, _ = parse_args(["--config", str(conf), "--output_dir", str(tmp_path)])
    assert model.projector_conf == {"num_layers": 3, "dropout": 0.0}
    assert model.ctc_conf == {"weight": 1.0, "vocab": "train", "compression": "none"}
    model, _, _ = parse_args(
        ["--config", str(conf), "--ctc_conf", '{"weight": 0.5, "compression": "ctc_soft"}',
         "--output_dir", str(tmp_path)]
    )  # fmt: skip
    assert model.ctc_conf == {"weight": 0.5, "vocab": "full", "compression": "ctc_soft"}
    model.save(tmp_path / "ckpt")
    assert ModelArguments.load(tmp_path / "ckpt") == model
    with pytest.raises(ValueError, match=r"ctc_conf: unknown keys \['wieght'\]"):
        parse_args(["--ctc_conf", '{"wieght": 1}', "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--projector_conf: .*expected a JSON mapping"):
        parse_args(["--projector_conf", "num_layers=3", "--output_dir", str(tmp_path)])


def test_train_resume_and_recognize(tiny_llm, tiny_whisper, speech_dir, tmp_path):
    exp = tmp_path / "exp"
    train = [
        sys.executable,
        "-m",
        "west.bin.train",
        *_model_flags(tiny_llm, tiny_whisper),
        "--data_path",
        str(speech_dir / "data.jsonl"),
        "--output_dir",
        str(exp),
        *REFERENCE_FLAGS,
    ]
    _run(train + ["--max_steps", "2"])
    ckpt = exp / "checkpoint-2"
    assert (ckpt / "west_complete").is_file()
    saved = load_file(ckpt / "model.safetensors")
    assert saved and all(k.startswith("projector.") for k in saved)
    assert ModelArguments.load(ckpt).llm_model_name_or_path == str(tiny_llm)

    # Run on to step 4: it resumes from checkpoint-2 instead of starting over.
    _run(train + ["--max_steps", "4"])
    state = json.loads((exp / "checkpoint-4" / "trainer_state.json").read_text())
    steps = [h["step"] for h in state["log_history"] if "loss" in h]
    assert steps == [1, 2, 3, 4]

    result = tmp_path / "dec" / "text"
    _run(
        [
            sys.executable,
            "-m",
            "west.bin.recognize",
            "--model_dir",
            str(exp / "checkpoint-4"),
            "--data_path",
            str(speech_dir / "data.jsonl"),
            "--result_path",
            str(result),
            "--batch_size",
            "4",
            "--num_beams",
            "2",
            "--max_new_tokens",
            "5",
        ]
    )
    lines = result.read_text(encoding="utf-8").splitlines()
    assert sorted(line.split(" ", 1)[0] for line in lines) == [f"utt{i}" for i in range(6)]

    # The 2024 reference's three model flags instead of --model_dir give the same hypotheses.
    result2 = tmp_path / "dec2" / "text"
    _run(
        [
            sys.executable,
            "-m",
            "west.bin.recognize",
            *_model_flags(tiny_llm, tiny_whisper)[:4],
            "--projector_model_path",
            str(exp / "checkpoint-4" / "model.safetensors"),
            "--data_path",
            str(speech_dir / "data.jsonl"),
            "--result_path",
            str(result2),
            "--batch_size",
            "4",
            "--num_beams",
            "2",
            "--max_new_tokens",
            "5",
        ]
    )
    # projector_hidden_size is not a flag here: west_config.json beside the weights gives it.
    assert sorted(result2.read_text(encoding="utf-8").splitlines()) == sorted(lines)


def test_beam_sweep_needs_a_templated_result_path(tmp_path, capsys):
    from west.bin.recognize import main

    with pytest.raises(SystemExit):
        main(
            [
                "--model_dir",
                str(tmp_path),
                "--data_path",
                "x.jsonl",
                "--result_path",
                str(tmp_path / "text"),
                "--num_beams",
                "1",
                "3",
            ]
        )
    assert "{beam}" in capsys.readouterr().err


def test_training_leaves_out_audio_longer_than_the_encoder_takes(
    model_args, speech_dir, tmp_path, caplog
):
    """LibriSpeech's training sets hold utterances up to ~35 s: west-train leaves them out with
    a warning naming each and a count, instead of refusing to start (or cutting the audio
    under a transcript that no longer matches it)."""
    import numpy as np
    import soundfile as sf

    from west.bin.train import build_data
    from west.config import DataArguments, TrainingArguments
    from west.models.build import build_model

    pieces = [sf.read(speech_dir / f"utt{i}.wav") for i in range(6)]
    rate = pieces[0][1]
    audio = np.concatenate([a for a, _ in pieces] * 12)[: int(31.5 * rate)]
    sf.write(tmp_path / "long.wav", audio, rate)
    lines = (speech_dir / "data.jsonl").read_text().splitlines()
    lines.append(json.dumps({"key": "long", "wav": str(tmp_path / "long.wav"), "txt": "long"}))
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(lines) + "\n")

    model = build_model(model_args)
    args = TrainingArguments(output_dir=str(tmp_path / "exp"), report_to="none")
    with caplog.at_level("WARNING"):
        dataset = build_data(model, DataArguments(data_path=str(data)), str(data), args)
    assert sorted(u.key for u in dataset.utts) == [f"utt{i}" for i in range(6)]
    assert "long.wav lasts 31.50 s" in caplog.text and "left out 1 utterance(s) of 7" in caplog.text

    cut = build_data(
        model, DataArguments(data_path=str(data), cut_long_audio=True), str(data), args
    )
    assert {u.key: u.cut_seconds for u in cut.utts}["long"] == 30.0


def test_deepspeed_optimizer_section_refuses_west_per_part_rates(tmp_path):
    """The reference's DeepSpeed json runs its own AdamW and WarmupLR over every trained
    tensor: WeST's per-part rates and CTC-only steps would be silently ignored, so they stop
    the run instead."""
    pytest.importorskip("deepspeed")
    from west.distributed import check_deepspeed_optimizer

    recipe = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "librispeech")
    reference = os.path.join(recipe, "conf", "ds_config_zero3_reference.json")
    plain = os.path.join(recipe, "conf", "ds_config_zero3.json")
    out = ["--output_dir", str(tmp_path)]
    _, _, args = parse_args(["--deepspeed", reference, "--lora_learning_rate", "1e-4", *out])
    with pytest.raises(ValueError, match=r"optimizer and scheduler section.*lora_learning_rate"):
        check_deepspeed_optimizer(args)
    for flags in (["--deepspeed", reference], ["--deepspeed", plain, "--ctc_only_steps", "5"]):
        _, _, args = parse_args([*flags, *out])
        check_deepspeed_optimizer(args)  # nothing WeST-specific to lose: no error
