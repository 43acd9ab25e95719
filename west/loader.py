"""Putting a trained model together: `west.load(model_dir)` -> a Transcriber.

A model folder (a checkpoint written by west-train, or a folder written by west-export)
holds `west_config.json` and `model.safetensors`; it loads from any working directory.
Relative paths in the config (encoder, LLM, GGUF file, chat template) that do not exist
from the current directory are looked up from the model folder and the folders above it
(see `resolve_paths`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch

from west.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from west.config import PATH_FIELDS, ModelArguments, config_path
from west.models.build import build_model
from west.models.quantize import quantize_model
from west.models.speech_llm import SpeechLLM
from west.transcriber import Transcriber

logger = logging.getLogger(__name__)

# Config keys that may name local files or folders, looked up here; the trained weights
# (projector_model_path) are the model folder's own.
PATH_KEYS = tuple(k for k in PATH_FIELDS if k != "projector_model_path")
# How many folders above the model folder a relative path is looked up from: a checkpoint
# (exp/<conf>/checkpoint-N) of an older run stored paths relative to the recipe folder,
# three levels up.
LEVELS_UP = 3
# Suffixes that mark a value as a file, never a hub or openai-whisper name.
FILE_SUFFIXES = (".pt", ".bin", ".safetensors", ".gguf", ".jinja", ".j2", ".json", ".txt")


def is_file(path: str | os.PathLike) -> bool:
    """Path.is_file that says False (not OSError) for strings too long to be a path."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def _exists(path: str | os.PathLike) -> bool:
    try:
        return Path(path).exists()
    except OSError:
        return False


def looks_like_path(value: str) -> bool:
    """True for a value that can only be a local path: absolute, `./`, `~`, two or more
    `/`, or a file suffix. Hub names (`org/name`) and openai-whisper names (`tiny`) are not."""
    return (
        value.startswith(("/", ".", "~"))
        or value.count("/") >= 2
        or "\\" in value
        or value.lower().endswith(FILE_SUFFIXES)
    )


def search_folders(model_dir: str | os.PathLike) -> list[Path]:
    """Where a relative config path is looked up after the current directory: the model
    folder, then each folder above it, LEVELS_UP of them (the run folder first)."""
    model_dir = Path(model_dir).absolute()
    return [model_dir, *list(model_dir.parents)[:LEVELS_UP]]


def find_relative(value: str, model_dir: str | os.PathLike) -> Path | None:
    """The first of cwd/value, model_dir/value, model_dir/../value, ... that exists."""
    if _exists(value):
        return Path(value)
    if Path(value).is_absolute():
        return None
    return next((base / value for base in search_folders(model_dir) if _exists(base / value)), None)


def resolve_paths(
    config: ModelArguments, model_dir: str | os.PathLike, source: str
) -> ModelArguments:
    """`config` with its relative local paths made to point where they exist.

    A value that exists from the current directory is kept; else the first of the model
    folder and the LEVELS_UP folders above it where it exists is used (an exported folder
    names its chat template relative to itself). A value found nowhere is an error when it
    looks like a path (`looks_like_path`); a hub or openai-whisper name is left for the
    loaders. `source` names the config file in messages. The GGUF file may also be a name
    inside the LLM folder, which load_llm resolves.
    """
    changes: dict[str, str] = {}
    for key in PATH_KEYS:
        value = getattr(config, key)
        if not value or (key == "chat_template" and "{" in value):
            continue  # unset, or a template given inline
        found = find_relative(value, model_dir)
        if found is not None:
            if not _exists(value):
                changes[key] = str(found)
            continue
        llm = changes.get("llm_model_name_or_path", config.llm_model_name_or_path)
        if key == "llm_gguf_file" and (not _exists(llm) or _exists(Path(llm) / value)):
            continue  # a file inside the LLM's folder or hub repository
        if key == "chat_template" or looks_like_path(value):
            tried = [Path(value).absolute()] + [b / value for b in search_folders(model_dir)]
            raise FileNotFoundError(
                f"{source}: {key} {value!r} not found; tried "
                + ", ".join(str(t) for t in dict.fromkeys(tried))
                + "; expected a local path (or pass the right one as an override)"
            )
    return dataclasses.replace(config, **changes) if changes else config


def load_model(
    model_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    quantize: str = "none",
    **overrides,
) -> SpeechLLM:
    """Build a model from a checkpoint folder's `west_config.json` (plus overrides).

    `model_dir` supplies the configuration and the trained weights (`model.safetensors`);
    without it, `overrides` must name the encoder, LLM and projector weights. `quantize`
    "int8": int8 Linear weights for decoding on CPU (west.models.quantize).
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    weights = overrides.get("projector_model_path")
    if model_dir is None and weights and (Path(weights).parent / CONFIG_NAME).is_file():
        # The 2024 reference's flags name the weights file; the config saved beside it
        # fills in the rest (projector size, LoRA, prompt) so those need not be repeated.
        model_dir = Path(weights).parent
    config = ModelArguments.load(model_dir) if model_dir else ModelArguments()
    if model_dir and "projector_model_path" not in overrides:
        overrides["projector_model_path"] = str(Path(model_dir) / WEIGHTS_NAME)
    config = dataclasses.replace(config, **overrides)
    if model_dir:
        config = resolve_paths(config, model_dir, str(config_path(model_dir)))
    model = build_model(config, llm_dtype=dtype)
    model.projector.to(dtype)
    model.encoder.to(dtype)
    return quantize_model(model.to(device).eval(), quantize)


def load(
    model_dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
    *,
    quantize: str = "none",
    num_beams: int | None = None,
    batch_size: int = 8,
    max_new_tokens: int | None = None,
    engine: str | None = None,
    ctc_weight: float | None = None,
    max_tokens_per_second: float | None = None,
    segmentation: str = "pauses",
    hotwords: str | os.PathLike | list[str] | None = None,
    hotword_bonus: float | None = None,
    context_route: str = "auto",
    **overrides,
) -> Transcriber:
    """A Transcriber for a checkpoint or exported folder (west_config.json + model.safetensors).

    Decoding settings left as None are the model's own `decode_conf` (the recipe's
    decoding, saved by west-train; west.config.DecodeConf). `segmentation`: how long
    recordings are cut (Transcriber.windows): "pauses" (windows of at most 28 s) or "vad"
    (utterances, as live transcription cuts them). `hotwords` (a list, a file or
    comma-separated text) are names and terms to expect in every input; `hotword_bonus` and
    `context_route` say how they are used (SpeechLLM.generate). `overrides` replace saved
    configuration fields, e.g. `llm_model_name_or_path=` when the LLM lives elsewhere on
    this machine.
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    # Fail before the slow build when the folder is not a model.
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"{model_dir}: no such folder; expected a WeST model folder")
    if not overrides.get("projector_model_path") and not (Path(model_dir) / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{Path(model_dir) / WEIGHTS_NAME}: no such file; expected a checkpoint folder "
            "written by west-train or a folder written by west-export"
        )
    model = load_model(model_dir, device=device, dtype=dtype, quantize=quantize, **overrides)
    transcriber = Transcriber(
        model,
        num_beams,
        batch_size,
        max_new_tokens,
        model_dir=model_dir,
        engine=engine,
        ctc_weight=ctc_weight,
        max_tokens_per_second=max_tokens_per_second,
        segmentation=segmentation,
        hotwords=hotwords,
        hotword_bonus=hotword_bonus,
        context_route=context_route,
    )
    d = transcriber.decoding
    logger.info(
        "%s: decoding with beam %d, CTC weight %g, engine %s, at most %d tokens a window and "
        "%g a second (the model's decode_conf, where not given)",
        model_dir,
        d.num_beams,
        d.ctc_weight,
        d.engine,
        d.max_new_tokens,
        d.max_tokens_per_second,
    )
    return transcriber
