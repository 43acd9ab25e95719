"""Every experiment config of every recipe builds a model, so no config can go stale.

The big LLMs and Whispers are replaced by the tiny fixtures; everything else (projector,
downsampling rate, hidden size, LoRA, speech position, training flags) is the config's own.
The projector sizes are also checked against the tables of the 2024 reference (WeST 2024,
wenet-e2e/west), built at the real models' dimensions. The `reference_*` confs reproduce that
reference's set-up (its DeepSpeed optimizer and schedule, speech before the prompt, decoding
with transformers' generate): checked here too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from west.bin.train import parse_args
from west.config import ModelArguments
from west.models.build import build_model, count_params
from west.models.projector import build_projector
from west.utils import read_config, yaml_to_argv

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFS = sorted(EXAMPLES.glob("*/conf/*.yaml"))
MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelArguments)}

# Output width of the real models the configs name.
WHISPER_DIM = {
    "tiny": 384,
    "base": 512,
    "small": 768,
    "medium": 1024,
    "large-v2": 1280,
    "large-v3": 1280,
}
LLM_DIM = {
    "meta-llama/Meta-Llama-3-8B-Instruct": 4096,
    "Qwen/Qwen2-0.5B-Instruct": 896,
    "Qwen/Qwen2-1.5B-Instruct": 1536,
    "Qwen/Qwen2-7B-Instruct": 3584,
}
# Projector sizes in the 2024 reference's README, in its unit (parameters / 2**20): its
# experiments, each with WeST's recommended conf, and the two it has reference confs for.
# Its "Whisper Large" was large-v2 (it read 80-bin log-mels); large-v3 has the same width.
REFERENCE_PROJECTOR_M = {
    "librispeech/reference_llama3-8b_whisper-large-v2": 18.32,
    "aishell/reference_qwen2-1.5b_whisper-large-v2": 13.32,
    "librispeech/llama3-8b_whisper-tiny": 9.46,
    "librispeech/llama3-8b_whisper-small": 12.32,
    "librispeech/llama3-8b_whisper-large-v3": 18.32,
    "aishell/qwen2-0.5b_whisper-large-v3": 12.07,
    "aishell/qwen2-1.5b_whisper-large-v3": 13.32,
    "aishell/qwen2-7b_whisper-large-v3": 17.32,
    "aishell/qwen2-1.5b_whisper-tiny": 4.5,
    "aishell/qwen2-1.5b_whisper-small": 7.3,
}


def name(conf: Path) -> str:
    return f"{conf.parents[1].name}/{conf.stem}"


def test_every_reference_experiment_has_a_config():
    assert set(REFERENCE_PROJECTOR_M) <= {name(c) for c in CONFS}


@pytest.mark.parametrize("conf", CONFS, ids=name)
def test_config_builds(conf, tiny_llm, tiny_whisper, tmp_path):
    raw = read_config(conf)
    model_args, data_args, args = parse_args(
        [
            "--config", str(conf),
            "--llm_model_name_or_path", str(tiny_llm),
            "--whisper_model_name_or_path", str(tiny_whisper),
            "--output_dir", str(tmp_path),
            "--bf16", "False",  # no bf16 on CPU
            "--dataloader_num_workers", "1",
            "--deepspeed", "",  # the conf's DeepSpeed json: test_deepspeed_settings_resolve
            # the trained weights a conf starts from are its recipe run's, not the test's
            "--projector_model_path", "",
        ]
    )  # fmt: skip
    # The config's own model settings survive the stand-ins.
    for key, value in raw.items():
        if key in MODEL_FIELDS and key not in (
            "llm_model_name_or_path",
            "whisper_model_name_or_path",
            "projector_model_path",
        ):
            got = getattr(model_args, key)
            if isinstance(value, dict):  # a block (ctc_conf): the rest are its defaults
                got = {k: v for k, v in got.items() if k in value}
            assert got == value, key
    model = build_model(model_args)
    projector = model.projector
    # the MLP's hidden width, or the Transformer layers' feed-forward width
    hidden = getattr(projector, "linear1", None) or projector.layers.layers[0].linear1
    assert hidden.out_features == model_args.projector_hidden_size
    if model_args.encoder_trainable_layers:
        top = model.encoder_top.blocks
        assert len(top) == model_args.encoder_trainable_layers
        assert all(p.requires_grad for p in top.parameters())
    assert projector.ds_rate == model_args.encoder_projector_ds_rate
    assert type(projector).__name__.lower().startswith(model_args.projector)
    has_lora = any("lora_" in n for n, _ in model.named_parameters())
    assert has_lora == (model_args.lora_rank > 0)
    trainable = {n.split(".")[0] for n, p in model.named_parameters() if p.requires_grad}
    assert "projector" in trainable
    if model_args.lora_rank == 0 and model_args.ctc.weight == 0:
        assert trainable == {"projector"}  # only the projector learns, as in the reference

    # At the real models' dimensions, the projector is the size in the reference's tables.
    if name(conf) not in REFERENCE_PROJECTOR_M:
        return
    real = build_projector(
        model_args.projector,
        WHISPER_DIM[raw["whisper_model_name_or_path"]],
        LLM_DIM[raw["llm_model_name_or_path"]],
        model_args.encoder_projector_ds_rate,
        model_args.projector_hidden_size,
    )
    size = REFERENCE_PROJECTOR_M[name(conf)]
    assert round(count_params(real) / 2**20, len(str(size).split(".")[1])) == size


DS_CONFS = sorted(EXAMPLES.glob("*/conf/ds_config_zero3*.json"))


@pytest.mark.parametrize("path", DS_CONFS, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_deepspeed_config(path):
    ds = json.loads(path.read_text())
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["overlap_comm"] and zero["contiguous_gradients"]
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["bf16"]["enabled"] == ds["fp16"]["enabled"] == "auto"
    for key in (
        "train_batch_size",
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert ds[key] == "auto", key
    if path.name == "ds_config_zero3.json":
        # WeST's: no optimizer or scheduler, so the Trainer's (AdamW, the conf's schedule) run.
        assert "optimizer" not in ds and "scheduler" not in ds
    else:
        # The 2024 reference's: DeepSpeed's AdamW and WarmupLR, every value from the flags.
        assert ds["optimizer"]["type"] == "AdamW"
        assert set(ds["optimizer"]["params"].values()) == {"auto"}
        assert ds["scheduler"]["type"] == "WarmupLR"
        assert set(ds["scheduler"]["params"].values()) == {"auto"}


REFERENCE_CONFS = [c for c in CONFS if c.stem.startswith("reference_")]


def test_each_recipe_has_a_reference_conf():
    recipes = {c.parents[1].name for c in CONFS} - {"mini"}
    assert recipes == {c.parents[1].name for c in REFERENCE_CONFS}


@pytest.mark.parametrize("conf", REFERENCE_CONFS, ids=name)
def test_reference_conf_is_the_reference_set_up(conf):
    raw = read_config(conf)
    assert raw["whisper_model_name_or_path"] == "large-v2"  # 80-bin log-mels
    assert raw["pad_to_30s"] is True and raw["speech_position"] == "start"
    assert raw["prompt"] == "Transcribe the speech" and raw.get("system_prompt") is None
    assert raw["length_grouping"] is False  # HF's random sampler
    assert json.loads((conf.parents[1] / raw["deepspeed"]).read_text())["scheduler"]
    assert raw["decode"] == {"engine": "hf", "max_new_tokens": 50}


@pytest.mark.parametrize("conf", [c for c in CONFS if "deepspeed" in read_config(c)], ids=name)
def test_deepspeed_settings_resolve(conf, tiny_llm, tiny_whisper, tmp_path, monkeypatch):
    """From the recipe folder (where run.sh runs) the conf's DeepSpeed json is found, and the
    Trainer fills its "auto" optimizer and schedule in from the conf's flags."""
    pytest.importorskip("deepspeed")
    monkeypatch.chdir(conf.parents[1])
    raw = read_config(conf)
    *_, args = parse_args(
        [
            "--config", str(conf.relative_to(conf.parents[1])),
            "--llm_model_name_or_path", str(tiny_llm),
            "--whisper_model_name_or_path", str(tiny_whisper),
            "--output_dir", str(tmp_path),
            "--bf16", "False",
        ]
    )  # fmt: skip
    ds = args.hf_deepspeed_config.config
    assert ds["optimizer"]["params"] == {
        "lr": raw["learning_rate"],
        "betas": [0.9, raw["adam_beta2"]],
        "eps": 1e-8,
        "weight_decay": raw["weight_decay"],
    }
    assert ds["scheduler"]["params"]["warmup_min_lr"] == 0
    assert ds["scheduler"]["params"]["warmup_max_lr"] == raw["learning_rate"]


@pytest.mark.parametrize("conf", [c for c in CONFS if "decode" in read_config(c)], ids=name)
def test_decode_settings_are_west_recognize_flags(conf):
    from west.bin.recognize import get_parser
    from west.utils import decode_argv

    parser = get_parser()
    argv = decode_argv(
        ["--config", str(conf), "--data_path", "x.jsonl", "--result_path", "out"],
        {a.dest for a in parser._actions},
    )
    args = parser.parse_args(argv)
    for key, value in read_config(conf)["decode"].items():
        if key == "num_beams" and not isinstance(value, list):
            value = [value]  # west-recognize takes a list of beam sizes
        assert getattr(args, key) == value, key


@pytest.mark.parametrize("conf", [c for c in CONFS if "decode" in read_config(c)], ids=name)
def test_the_model_part_of_decode_settings_is_saved_with_the_model(conf, tmp_path):
    """west-train saves the decode: keys that describe how the model decodes (decode_conf),
    so the model decodes outside its recipe as inside."""
    from west.config import DecodeConf

    argv = ["--config", str(conf), "--output_dir", str(tmp_path), "--bf16", "False"]
    model_args, *_ = parse_args([*argv, "--deepspeed", ""])
    decode = read_config(conf)["decode"]
    for field in dataclasses.fields(DecodeConf):
        if field.name in decode:
            value = decode[field.name]
            assert model_args.decode_conf[field.name] == (
                max(value) if isinstance(value, list) else value
            ), field.name


@pytest.mark.parametrize("conf", REFERENCE_CONFS[:1], ids=name)
def test_reference_conf_builds_a_speech_first_prompt(conf, tiny_llm, tiny_whisper, tmp_path):
    model_args, *_ = parse_args(
        [
            "--config", str(conf),
            "--llm_model_name_or_path", str(tiny_llm),
            "--whisper_model_name_or_path", str(tiny_whisper),
            "--output_dir", str(tmp_path),
            "--bf16", "False",
            "--deepspeed", "",
        ]
    )  # fmt: skip
    assert build_model(model_args).prompt.prefix_ids == []


# ---------------------------------------------------------------- `base:` confs


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_base_is_merged_and_overridden(tmp_path):
    write(
        tmp_path / "base.yaml",
        "projector: conv1d\nlora_rank: 0\ndecode:\n  engine: hf\n  max_new_tokens: 50\n",
    )
    write(tmp_path / "mid.yaml", "base: base.yaml\nlora_rank: 8\ndecode:\n  max_new_tokens: 64\n")
    # A base is found relative to the including file, wherever the reader runs.
    top = write(tmp_path / "sub" / "top.yaml", "base: ../mid.yaml\nprojector: linear\n")
    assert read_config(top) == {
        "projector": "linear",  # the including file wins
        "lora_rank": 8,  # from the middle of the chain
        "decode": {"engine": "hf", "max_new_tokens": 64},  # merged key by key
    }
    argv = yaml_to_argv(["--config", str(top), "--lora_rank", "4"])
    assert argv[-2:] == ["--lora_rank", "4"] and "--base" not in argv
    assert argv[argv.index("--projector") + 1] == "linear"


def test_base_cycle_is_an_error_naming_the_files(tmp_path):
    a = write(tmp_path / "a.yaml", "lora_rank: 0\nbase: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(ValueError, match=r"b.yaml:1: `base: a.yaml` makes a cycle: .*a.yaml -> "):
        read_config(a)
    itself = write(tmp_path / "c.yaml", "base: c.yaml\n")
    with pytest.raises(ValueError, match="cycle"):
        read_config(itself)


def test_missing_base_is_an_error_naming_the_file_and_line(tmp_path):
    conf = write(tmp_path / "x.yaml", "lora_rank: 0\nbase: nope.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"x.yaml:2: `base: nope.yaml`: no such file"):
        read_config(conf)
    conf = write(tmp_path / "y.yaml", "base: [a, b]\n")
    with pytest.raises(ValueError, match=r"y.yaml:1: `base:` must name a yaml file"):
        read_config(conf)


def test_recipe_confs_with_a_base_differ_from_it_only_where_they_say(tmp_path):
    """Each override conf is its base with the keys it names changed, nothing else; in the GPU
    recipes those are the LLM or the encoder."""
    overrides = [c for c in CONFS if "base" in yaml_keys(c)]
    assert len(overrides) >= 6
    for conf in overrides:
        own = set(yaml_keys(conf)) - {"base"}
        if conf.parents[1].name != "mini":
            assert own <= {"llm_model_name_or_path", "whisper_model_name_or_path"}, conf
        base = read_config(conf.parent / yaml_keys(conf)["base"])
        assert {k: v for k, v in read_config(conf).items() if k not in own} == {
            k: v for k, v in base.items() if k not in own
        }


def yaml_keys(conf: Path) -> dict:
    import yaml

    return yaml.safe_load(conf.read_text(encoding="utf-8"))
