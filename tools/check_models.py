#!/usr/bin/env python3
"""Check, before training, that a run's config is valid and its models can be found.

    tools/check_models.py --config conf/x.yaml [--download] [west-train flags...]

The config is read as west-train reads it (later flags override the file). Checked:
every key of the yaml is a west-train flag; the LLM is a local folder, or a Hugging Face
Hub model that is cached or that this account may download (gated models such as
LLaMA 3 need the licence accepted and `hf auth login`); the speech encoder is a local
checkpoint or folder, or an openai-whisper name.

--download fetches what is not cached yet, once, so that the training processes started
by torchrun all find it there instead of downloading it together (openai-whisper writes
its file without a lock). Exit status: 0 when all resolve, 1 otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from transformers import HfArgumentParser

from west.config import DataArguments, ModelArguments, TrainingArguments
from west.utils import DECODE_KEY, read_config, yaml_to_argv

# What an LLM needs from the Hub; LLaMA repos also hold the original .pth weights.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.tiktoken", "*.txt", "*.jinja"]
HUB_IGNORE = ["original/*"]


class Unresolvable(Exception):
    pass


def check_keys(config: Path) -> None:
    try:
        conf = read_config(config)  # with its `base:` merged in, as west-train reads it
    except (ValueError, FileNotFoundError) as e:
        raise Unresolvable(str(e)) from None
    known = {
        f.name
        for cls in (ModelArguments, DataArguments, TrainingArguments)
        for f in dataclasses.fields(cls)
    }
    unknown = sorted(set(conf) - known - {DECODE_KEY})  # `decode:` is west-recognize's
    if unknown:
        raise Unresolvable(f"{config}: {unknown} are not west-train flags (see west-train --help)")


def check_hub(repo: str, filename: str, download: bool, patterns: list[str]) -> str:
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    cached = isinstance(huggingface_hub.try_to_load_from_cache(repo, filename), str)
    if not download and cached:
        return f"Hugging Face Hub model {repo}, in the local cache"
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        if cached:
            return f"Hugging Face Hub model {repo}, in the local cache (offline: not updated)"
        raise Unresolvable(
            f"{repo}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it "
            "on a machine with access, or give a local folder"
        )
    try:
        huggingface_hub.auth_check(repo)
    except GatedRepoError as e:
        raise Unresolvable(
            f"{repo}: gated model; accept its licence on https://huggingface.co/{repo} "
            "and log in (`hf auth login`) or set HF_TOKEN"
        ) from e
    except RepositoryNotFoundError as e:
        raise Unresolvable(
            f"{repo}: no such local folder, nor a model on the Hugging Face Hub (or private)"
        ) from e
    except Exception as e:  # network, proxy, ...
        raise Unresolvable(f"{repo}: could not ask the Hugging Face Hub ({e})") from e
    if download:
        path = huggingface_hub.snapshot_download(
            repo, allow_patterns=patterns, ignore_patterns=HUB_IGNORE
        )
        return f"Hugging Face Hub model {repo}, downloaded to {path}"
    return f"Hugging Face Hub model {repo}, downloadable (not cached yet)"


def check_llm(args: ModelArguments, download: bool) -> str:
    name, gguf = args.llm_model_name_or_path, args.llm_gguf_file
    path = Path(name)
    if path.is_dir():
        need = path / (Path(gguf).name if gguf else "config.json")
        if not need.is_file() and not (gguf and Path(gguf).is_file()):
            raise Unresolvable(f"{path}: no {need.name}; expected a Hugging Face model folder")
        return f"local folder {path}"
    if path.exists() or name.startswith(("/", ".", "~")) or name.count("/") > 1:
        raise Unresolvable(
            f"{name}: not a model folder nor a Hub name like 'Qwen/Qwen2-1.5B-Instruct'"
        )
    patterns = HUB_PATTERNS + ([gguf] if gguf else [])
    return check_hub(name, gguf or "config.json", download, patterns)


def check_encoder(args: ModelArguments, download: bool) -> str:
    name = args.whisper_model_name_or_path
    path = Path(name)
    if path.is_file():
        return f"checkpoint {path}"
    if (path / "config.json").is_file():
        return f"Hugging Face Whisper folder {path}"
    if args.encoder_type == "hf_whisper" and name.count("/") == 1 and not path.exists():
        return check_hub(name, "config.json", download, HUB_PATTERNS)
    import whisper

    if name not in whisper._MODELS:
        raise Unresolvable(
            f"{name}: not a checkpoint file, Whisper folder or openai-whisper name "
            f"({', '.join(whisper._MODELS)})"
        )
    # Where west/models/encoder.py looks for (and downloads) named checkpoints.
    root = os.path.join(os.path.expanduser("~"), ".cache", "whisper")
    url = whisper._MODELS[name]
    cached = os.path.join(root, os.path.basename(url))
    if os.path.isfile(cached) and not download:
        return f"openai-whisper {name}, in {cached}"
    if download:
        whisper._download(url, root, in_memory=False)  # verifies the SHA-256 too
        return f"openai-whisper {name}, in {cached} (checksum verified)"
    return f"openai-whisper {name}, downloaded from openaipublic.azureedge.net when training starts"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    p.add_argument("--config", required=True, type=Path, help="west-train yaml config")
    p.add_argument("--download", action="store_true", help="fetch models not cached yet")
    args, flags = p.parse_known_args(argv)
    if not args.config.is_file():
        p.error(f"{args.config}: no such config file")
    try:
        check_keys(args.config)
        model_args, _ = HfArgumentParser(ModelArguments).parse_args_into_dataclasses(
            args=yaml_to_argv(["--config", str(args.config)] + flags),
            return_remaining_strings=True,
        )
        lines = [
            f"llm: {check_llm(model_args, args.download)}",
            f"encoder: {check_encoder(model_args, args.download)}",
        ]
    except Unresolvable as e:
        print(f"check_models.py: error: {e}", file=sys.stderr)
        return 1
    for line in lines:
        print(f"check_models.py: {args.config}: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
