"""Every experiment config of every recipe builds a model, so no config can go stale.

The big LLMs and Whispers are replaced by the tiny fixtures; everything else (projector,
downsampling rate, hidden size, LoRA, training flags) is the config's own. The projector
sizes are also checked against the seed's tables, built at the real models' dimensions.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from west.bin.train import parse_args
from west.config import ModelArguments
from west.models.build import build_model, count_params
from west.models.projector import build_projector

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONFS = sorted(EXAMPLES.glob("*/conf/*.yaml"))
MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelArguments)}

# Output width of the real models the configs name.
WHISPER_DIM = {"tiny": 384, "base": 512, "small": 768, "medium": 1024, "large-v3": 1280}
LLM_DIM = {
    "meta-llama/Meta-Llama-3-8B-Instruct": 4096,
    "Qwen/Qwen2-0.5B-Instruct": 896,
    "Qwen/Qwen2-1.5B-Instruct": 1536,
    "Qwen/Qwen2-7B-Instruct": 3584,
}
# Projector sizes in the seed's README, in its unit (parameters / 2**20).
SEED_PROJECTOR_M = {
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


def test_every_seed_experiment_has_a_config():
    assert set(SEED_PROJECTOR_M) <= {name(c) for c in CONFS}


@pytest.mark.parametrize("conf", CONFS, ids=name)
def test_config_builds(conf, tiny_llm, tiny_whisper, tmp_path):
    raw = yaml.safe_load(conf.read_text())
    model_args, data_args, args = parse_args(
        [
            "--config", str(conf),
            "--llm_model_name_or_path", str(tiny_llm),
            "--whisper_model_name_or_path", str(tiny_whisper),
            "--output_dir", str(tmp_path),
            "--bf16", "False",  # no bf16 on CPU
            "--dataloader_num_workers", "1",
        ]
    )  # fmt: skip
    # The config's own model settings survive the stand-ins.
    for key, value in raw.items():
        if key in MODEL_FIELDS and key not in (
            "llm_model_name_or_path",
            "whisper_model_name_or_path",
        ):
            assert getattr(model_args, key) == value, key
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
    if model_args.lora_rank == 0 and model_args.ctc_weight == 0:
        assert trainable == {"projector"}  # the seed's set-up: only the projector learns

    # At the real models' dimensions, the projector is the size in the seed's tables.
    if name(conf) not in SEED_PROJECTOR_M:
        return
    real = build_projector(
        model_args.projector,
        WHISPER_DIM[raw["whisper_model_name_or_path"]],
        LLM_DIM[raw["llm_model_name_or_path"]],
        model_args.encoder_projector_ds_rate,
        model_args.projector_hidden_size,
    )
    seed = SEED_PROJECTOR_M[name(conf)]
    assert round(count_params(real) / 2**20, len(str(seed).split(".")[1])) == seed


@pytest.mark.parametrize("recipe", sorted({c.parents[1].name for c in CONFS}))
def test_deepspeed_config(recipe):
    path = EXAMPLES / recipe / "conf" / "ds_config_zero3.json"
    if not path.is_file():
        pytest.skip(f"{recipe} has no DeepSpeed config")
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
    # No optimizer/scheduler here: the Trainer's (AdamW, cosine) are the ones in the configs.
    assert "optimizer" not in ds and "scheduler" not in ds
