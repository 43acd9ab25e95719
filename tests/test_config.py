"""west_config.json: written with absolute local paths, and read back even when an older
WeST wrote it (flat CTC keys, before `ctc_conf`)."""

from __future__ import annotations

import json

import pytest

from west.config import ModelArguments


def test_local_paths_are_written_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "llm").mkdir(parents=True)
    (tmp_path / "models" / "llm" / "model.gguf").write_text("")
    (tmp_path / "models" / "whisper.pt").write_text("")
    (tmp_path / "template.jinja").write_text("{{ messages }}")
    config = ModelArguments(
        llm_model_name_or_path="models/llm",
        llm_gguf_file="models/llm/model.gguf",
        whisper_model_name_or_path="models/whisper.pt",
        chat_template="template.jinja",
        projector_model_path="exp/missing",  # not here: kept as given
    )
    data = json.loads(config.save(tmp_path / "exp").read_text())
    assert data["llm_model_name_or_path"] == str(tmp_path / "models" / "llm")
    assert data["whisper_model_name_or_path"] == str(tmp_path / "models" / "whisper.pt")
    assert data["chat_template"] == str(tmp_path / "template.jinja")
    assert data["llm_gguf_file"] == "model.gguf"  # read from the LLM folder, as load_llm does
    assert data["projector_model_path"] == "exp/missing"
    assert config.llm_model_name_or_path == "models/llm"  # the run's own config is unchanged


def test_hub_names_and_inline_templates_stay(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    config = ModelArguments(
        llm_model_name_or_path="Qwen/Qwen2-1.5B-Instruct",
        whisper_model_name_or_path="tiny",
        chat_template=template,
    )
    loaded = ModelArguments.load(config.save(tmp_path).parent)
    assert loaded == config


def test_old_flat_ctc_keys_load_into_ctc_conf(tmp_path):
    """A west_config.json written before ctc_conf existed (the mini recipe's checkpoints)."""
    old = {k: v for k, v in ModelArguments().__dict__.items() if k != "ctc_conf"}
    old.update(ctc_weight=1.0, ctc_vocab="train", speech_compression="ctc_soft")
    del old["projector_conf"]  # also absent from old files
    (tmp_path / "west_config.json").write_text(json.dumps(old))
    config = ModelArguments.load(tmp_path)
    assert config.ctc_conf == {"weight": 1.0, "vocab": "train", "compression": "ctc_soft"}
    assert config.projector_conf == {}
    old["ctc_conf"] = {"weight": 0.5}
    (tmp_path / "west_config.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match=r"both ctc_conf and the old keys \['ctc_vocab'"):
        ModelArguments.load(tmp_path)


def test_ctc_conf_refuses_unknown_values():
    with pytest.raises(ValueError, match=r"ctc_conf: unknown compression 'soft'; known:"):
        ModelArguments(ctc_conf={"weight": 1.0, "compression": "soft"})
    with pytest.raises(ValueError, match=r"ctc_conf: weight must be a number, got 'high'"):
        ModelArguments(ctc_conf={"weight": "high"})
