"""Build a SpeechLLM from a ModelArguments: the one place the three parts meet."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from safetensors.torch import load_file

from west.config import ModelArguments
from west.models.encoder import build_encoder
from west.models.llm import add_lora, build_prompt, load_llm
from west.models.projector import build_projector
from west.models.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)


def count_params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def build_model(config: ModelArguments, llm_dtype: torch.dtype = torch.float32) -> SpeechLLM:
    encoder = build_encoder(config.encoder_type, config.whisper_model_name_or_path)
    llm, tokenizer = load_llm(config.llm_model_name_or_path, config.llm_gguf_file, llm_dtype)
    llm_dim = llm.get_input_embeddings().weight.shape[1]
    projector = build_projector(
        config.projector,
        encoder.output_dim,
        llm_dim,
        config.encoder_projector_ds_rate,
        config.projector_hidden_size,
    )
    n = count_params(projector)
    logger.info(
        "projector %s: %d parameters (%.2fM, %.2f MiB-M as the seed counts)",
        config.projector,
        n,
        n / 1e6,
        n / 2**20,
    )
    encoder.requires_grad_(not config.freeze_encoder)
    encoder_top = None
    if config.encoder_trainable_layers > 0:
        encoder_top = encoder.split(config.encoder_trainable_layers).requires_grad_(True)
    llm.requires_grad_(not config.freeze_llm)
    if config.lora_rank > 0:
        llm = add_lora(
            llm,
            config.lora_rank,
            config.lora_alpha,
            config.lora_dropout,
            config.lora_target_modules,
        )
    prompt = build_prompt(tokenizer, config.prompt, config.system_prompt, config.chat_template)
    model = SpeechLLM(config, encoder, projector, llm, tokenizer, prompt, encoder_top)
    if config.freeze_encoder:
        model.encoder.eval()
    if config.projector_model_path:
        load_trained(model, config.projector_model_path)
    logger.info(
        "model: %d parameters, %d trainable", count_params(model), count_params(model, True)
    )
    return model


def load_trained(model: SpeechLLM, path: str | Path) -> None:
    """Load projector/LoRA weights written by WeST, refusing any that do not fit."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected WeST's model.safetensors")
    saved = load_file(str(path), device="cpu")
    if "ctc_tokens" in saved:
        model.set_ctc_tokens(saved["ctc_tokens"].tolist())
    own = model.state_dict()
    unknown = sorted(k for k in saved if k not in own)
    if unknown:
        raise ValueError(
            f"{path}: tensors not in this model: {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
            "(was it trained with another projector, LoRA setting or LLM?)"
        )
    for k, v in saved.items():
        if v.shape != own[k].shape:
            raise ValueError(
                f"{path}: tensor {k} has shape {tuple(v.shape)} but the model expects "
                f"{tuple(own[k].shape)} (was it trained with another encoder, LLM or projector size?)"
            )
    expected = (
        set(model.trainable_state_dict())
        if any(p.requires_grad for p in model.parameters())
        else set()
    )
    missing = sorted(expected - set(saved))
    if missing:
        logger.warning("%s: no weights for %s; they keep their initial values", path, missing[:5])
    model.load_state_dict(saved, strict=False)
