"""Tiny random models with real geometry, for the tests and the benchmarks' quick runs.

The encoder is an openai-whisper checkpoint with Whisper's real input (80 mels, 1500
frames) and a 64-wide, 2-layer body; the LLM is a 2-layer causal LM of width 64 with a
real tokenizer and chat template handed in by the caller.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch


def write_tiny_whisper(path: str | os.PathLike, seed: int = 0) -> Path:
    """A random openai-whisper checkpoint (.pt) at `path`, written atomically."""
    from whisper.model import ModelDimensions, Whisper

    dims = ModelDimensions(
        n_mels=80, n_audio_ctx=1500, n_audio_state=64, n_audio_head=2, n_audio_layer=2,
        n_vocab=51864, n_text_ctx=448, n_text_state=64, n_text_head=2, n_text_layer=2,
    )  # fmt: skip
    torch.manual_seed(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {"dims": dataclasses.asdict(dims), "model_state_dict": Whisper(dims).state_dict()}, tmp
    )
    os.replace(tmp, path)
    return path


def write_tiny_llm(tokenizer, out: str | os.PathLike, arch: str = "qwen2", seed: int = 0) -> Path:
    """A random 2-layer `arch` (qwen2 or llama) causal LM folder with `tokenizer`, written atomically."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if arch not in classes:
        raise ValueError(f"unknown tiny LLM architecture {arch!r}; known: {sorted(classes)}")
    config_cls, model_cls = classes[arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,  # wide logits: greedy choices are not near-ties
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    model_cls(config).save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists() and not any(out.iterdir()):
        out.rmdir()
    os.replace(tmp, out)
    return out
