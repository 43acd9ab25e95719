"""Build a SpeechLLM from a ModelArguments: the one place the three parts meet."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from safetensors.torch import load_file

from west.checkpoint import WEIGHTS_NAME
from west.config import ModelArguments
from west.distributed import full_shape, gathered, is_partitioned, rank_and_world
from west.models.encoder import build_encoder
from west.models.llm import add_lora, build_prompt, load_llm
from west.models.projector import build_projector
from west.models.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)

# Tensor names in checkpoints written before the CTC branch became its own module
OLD_NAMES = {"ctc_blank": "ctc.blank", "ctc_tokens": "ctc.tokens"}


def count_params(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(
        math.prod(full_shape(p))
        for p in module.parameters()
        if p.requires_grad or not trainable_only
    )


def build_model(config: ModelArguments, llm_dtype: torch.dtype = torch.float32) -> SpeechLLM:
    encoder = build_encoder(config.encoder_type, config.whisper_model_name_or_path)
    llm, tokenizer = load_llm(config.llm_model_name_or_path, config.llm_gguf_file, llm_dtype)
    # The embedding module's width, not its weight's shape: under ZeRO-3 the local weight
    # is an empty slice.
    llm_dim = llm.get_input_embeddings().embedding_dim
    projector = build_projector(
        config.projector,
        encoder.output_dim,
        llm_dim,
        config.encoder_projector_ds_rate,
        config.projector_hidden_size,
        config.projector_conf,
    )
    n = count_params(projector)
    logger.info(
        "projector %s: %d parameters (%.2fM; %.2f in 2**20 units, as the 2024 reference counts)",
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
    prompt = build_prompt(
        tokenizer, config.prompt, config.system_prompt, config.chat_template, config.speech_position
    )
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
    """Load projector/LoRA weights written by WeST, refusing any that do not fit.

    Works on a ZeRO-3 partitioned model too (every process must call it then).
    """
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; expected WeST's {WEIGHTS_NAME}")
    saved = {OLD_NAMES.get(k, k): v for k, v in load_file(str(path), device="cpu").items()}
    if "ctc.tokens" in saved:
        if model.ctc is None:
            raise ValueError(
                f"{path}: holds a CTC vocabulary (ctc.tokens) but the model has no CTC branch "
                "(was it trained with a ctc_conf weight > 0?)"
            )
        model.ctc.set_tokens(saved.pop("ctc.tokens").tolist(), model.tokenizer)
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    unknown = sorted(k for k in saved if k not in own)
    if unknown:
        raise ValueError(
            f"{path}: tensors not in this model: {unknown[:5]}{' ...' if len(unknown) > 5 else ''} "
            "(was it trained with another projector, LoRA setting or LLM?)"
        )
    for k, v in saved.items():
        if tuple(v.shape) != full_shape(own[k]):
            raise ValueError(
                f"{path}: tensor {k} has shape {tuple(v.shape)} but the model expects "
                f"{full_shape(own[k])} (was it trained with another encoder, LLM or projector size?)"
            )
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trainable - set(saved))
    if missing:
        logger.warning("%s: no weights for %s; they keep their initial values", path, missing[:5])
    with torch.no_grad():
        for k, v in saved.items():
            # Under ZeRO-3 rank 0 writes the whole tensor and DeepSpeed partitions it again.
            with gathered([own[k]], modifier_rank=0):
                if rank_and_world()[0] == 0 or not is_partitioned(own[k]):
                    own[k].copy_(v.to(own[k].dtype))
