"""west-recognize's `--config` (the yaml's `decode:` mapping) and `--engine`."""

from __future__ import annotations

import logging

import pytest
import torch

from west.bin.recognize import parse_args
from west.data.dataset import read_data, validate
from west.decode import recognize
from west.models.build import build_model
from west.utils import yaml_to_argv

CONF = """\
projector: linear
learning_rate: 1.0e-3
decode:
  engine: hf
  max_new_tokens: 50
  num_beams: [1, 5]
  skip_bad_data: true
  cut_long_audio: false
"""


def test_config_decode_mapping_gives_defaults_flags_win(tmp_path):
    conf = tmp_path / "exp.yaml"
    conf.write_text(CONF)
    common = ["--model_dir", "m", "--data_path", "d.jsonl", "--result_path", "t{beam}"]
    args = parse_args(["--config", str(conf), *common])
    assert (args.engine, args.max_new_tokens, args.num_beams) == ("hf", 50, [1, 5])
    assert args.skip_bad_data and not args.cut_long_audio
    assert args.batch_size == 8  # not in the yaml: the flag's own default
    # Flags given on the command line win, before or after --config.
    args = parse_args([*common, "--num_beams", "3", "--config", str(conf), "--engine", "west"])
    assert (args.engine, args.max_new_tokens, args.num_beams) == ("west", 50, [3])
    # Without --config or flags, the settings are left to the model's decode_conf.
    args = parse_args(common)
    assert (args.engine, args.max_new_tokens, args.num_beams, args.ctc_weight) == (None,) * 4


def test_config_errors_name_the_file(tmp_path, capsys):
    conf = tmp_path / "bad.yaml"
    conf.write_text("decode:\n  beams: 5\n")
    common = ["--model_dir", "m", "--data_path", "d.jsonl", "--result_path", "t"]
    with pytest.raises(SystemExit):
        parse_args(["--config", str(conf), *common])
    assert f"{conf}: decode.beams: not a west-recognize flag" in capsys.readouterr().err
    conf.write_text("decode:\n  engine: vllm\n")
    with pytest.raises(SystemExit):
        parse_args(["--config", str(conf), *common])
    assert "invalid choice: 'vllm'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--config", str(tmp_path / "missing.yaml"), *common])
    assert "missing.yaml: config file not found" in capsys.readouterr().err


def test_train_config_saves_the_model_part_of_the_decode_mapping(tmp_path):
    """west-train keeps the decode: keys that describe the model's decoding (its decode_conf,
    saved with it) and skips the rest (data-list flags such as skip_bad_data)."""
    conf = tmp_path / "exp.yaml"
    conf.write_text(CONF)
    argv = yaml_to_argv(["--config", str(conf), "--learning_rate", "2e-4"])
    decode = '{"engine": "hf", "max_new_tokens": 50, "num_beams": [1, 5]}'
    assert argv == [
        "--projector", "linear", "--learning_rate", "0.001", "--decode_conf", decode,
        "--learning_rate", "2e-4",
    ]  # fmt: skip
    from west.bin.train import parse_args as train_parse_args

    model, _, args = train_parse_args(["--config", str(conf), "--output_dir", str(tmp_path)])
    assert model.projector == "linear" and args.learning_rate == 1e-3
    # a beam sweep: the model decodes with its widest beam
    assert (model.decode.engine, model.decode.max_new_tokens, model.decode.num_beams) == (
        "hf",
        50,
        5,
    )


def test_engine_hf_applies_the_llm_generation_config(model_args, speech_dir, tmp_path, caplog):
    """`engine` reaches generate: with the tokens engine "west" chose suppressed in the
    LLM's generation_config, "west" (which ignores it, with a warning) gives the same text
    again while "hf" must choose other tokens for every utterance."""
    torch.manual_seed(0)
    model = build_model(model_args).eval()
    utts = validate(read_data(str(speech_dir / "data.jsonl")))[:2]
    west_text = tmp_path / "west"
    recognize(model, utts, west_text, batch_size=2, max_new_tokens=4)
    west_lines = west_text.read_text(encoding="utf-8").splitlines()
    produced = {i for line in west_lines for i in model.tokenizer(line.split(" ", 1)[1]).input_ids}
    model.llm.generation_config.suppress_tokens = sorted(produced)
    hf_text = tmp_path / "hf"
    with caplog.at_level(logging.WARNING):
        recognize(model, utts, hf_text, batch_size=2, max_new_tokens=4, engine="hf")
        assert "does not apply generation_config" not in caplog.text
        recognize(model, utts, tmp_path / "west2", batch_size=2, max_new_tokens=4)
        assert "suppress_tokens" in caplog.text
    assert (tmp_path / "west2").read_text(encoding="utf-8").splitlines() == west_lines
    hf_lines = hf_text.read_text(encoding="utf-8").splitlines()
    assert [x.split(" ", 1)[0] for x in hf_lines] == [x.split(" ", 1)[0] for x in west_lines]
    assert all(h != w for h, w in zip(hf_lines, west_lines)), (hf_lines, west_lines)
