"""Exporting a trained model: a self-contained folder with a README model card."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

import numpy as np

from west.checkpoint import STATE_NAME, WEIGHTS_NAME, newest_file
from west.config import ModelArguments
from west.loader import find_relative, is_file

logger = logging.getLogger(__name__)


def training_summary(model_dir: str | Path) -> dict | None:
    """Steps, epochs and final losses from `trainer_state.json` in `model_dir` (or its newest
    checkpoint-N); None if there is none."""
    path = newest_file(model_dir, STATE_NAME)
    if path is None:
        return None
    state = json.loads(path.read_text())
    log = state.get("log_history", [])
    losses = [h for h in log if "loss" in h]
    evals = [h for h in log if "eval_loss" in h]
    summary = {
        "source": str(path),
        "global_step": state.get("global_step"),
        "max_steps": state.get("max_steps"),
        "epoch": state.get("epoch"),
    }
    if losses:
        summary["final_loss"] = losses[-1]["loss"]
        summary["final_loss_step"] = losses[-1].get("step")
    if evals:
        summary["final_eval_loss"] = evals[-1]["eval_loss"]
    train = [h for h in log if "train_loss" in h]
    if train:
        summary["train_loss"] = train[-1]["train_loss"]
    return summary


def _tensor_counts(weights: Path) -> dict[str, int]:
    """Parameters per top-level part (projector, llm [LoRA], ...) in a safetensors file."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    with safe_open(str(weights), framework="pt") as f:
        for k in f.keys():
            part = "lora" if "lora_" in k else k.split(".", 1)[0]
            counts[part] = counts.get(part, 0) + int(np.prod(f.get_slice(k).get_shape()))
    return counts


def _absolute_if_local(name_or_path: str | None, model_dir: Path) -> str | None:
    """A local path, found as west.load finds it (from here, else from the model folder and
    the folders above it), made absolute; hub names, and paths found nowhere (the export
    may be made where the encoder or LLM is not), stay as they are."""
    found = find_relative(name_or_path, model_dir) if name_or_path else None
    return str(found.resolve()) if found is not None else name_or_path


def export_model(model_dir: str | Path, output_dir: str | Path, overwrite: bool = False) -> Path:
    """Write a self-contained model folder: weights, configuration and a README model card.

    The encoder and the LLM are not copied (they are large and have their own licences):
    the card and `west_config.json` name them.
    """
    model_dir, out = Path(model_dir), Path(output_dir)
    weights = model_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(
            f"{weights}: no such file; expected a checkpoint folder written by west-train"
        )
    config = ModelArguments.load(model_dir)
    if out.resolve() == model_dir.resolve():
        raise ValueError(f"{out}: the output folder must differ from --model_dir")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder exists and is not empty (pass --overwrite)")
    out.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(
        config,
        projector_model_path=None,  # the weights are the folder's own model.safetensors
        llm_model_name_or_path=_absolute_if_local(config.llm_model_name_or_path, model_dir),
        whisper_model_name_or_path=_absolute_if_local(config.whisper_model_name_or_path, model_dir),
        llm_gguf_file=_absolute_if_local(config.llm_gguf_file, model_dir),
    )
    template = config.chat_template
    found = find_relative(template, model_dir) if template and "{" not in template else None
    if found is not None and is_file(found):
        shutil.copyfile(found, out / "chat_template.jinja")
        config = dataclasses.replace(config, chat_template="chat_template.jinja")
    shutil.copyfile(weights, out / WEIGHTS_NAME)
    config.save(out)
    summary = training_summary(model_dir)
    card = model_card(config, _tensor_counts(weights), summary, model_dir, out)
    (out / "README.md").write_text(card, encoding="utf-8")
    logger.info("exported %s to %s", model_dir, out)
    return out


def model_card(
    config: ModelArguments,
    counts: dict[str, int],
    summary: dict | None,
    source: Path,
    out: Path,
) -> str:
    """The exported folder's README.md."""
    gguf = f" (GGUF file `{config.llm_gguf_file}`)" if config.llm_gguf_file else ""
    lora = (
        f"rank {config.lora_rank}, alpha {config.lora_alpha}, on `{config.lora_target_modules}`"
        f", {counts.get('lora', 0):,} parameters"
        if config.lora_rank > 0
        else "none (the LLM is used as released)"
    )
    system = (
        "the chat template's default"
        if config.system_prompt is None
        else f"`{config.system_prompt}`"
    )
    template = (
        "the LLM tokenizer's"
        if config.chat_template is None
        else "`chat_template.jinja` (in this folder)"
        if config.chat_template == "chat_template.jinja"
        else "given in `west_config.json`"
    )
    lines = [
        f"# WeST speech recognition model: {out.name}",
        "",
        "An LLM-based speech recogniser trained with WeST (We Speech Transcript):",
        "a Whisper encoder, a projector, and a causal LLM that writes the transcript.",
        "This folder holds only what training changed; the encoder and the LLM are loaded",
        "from the names below (hub names are downloaded, local paths must exist).",
        "",
        "| part | what |",
        "| --- | --- |",
        f"| speech encoder | `{config.whisper_model_name_or_path}` (encoder type `{config.encoder_type}`, frozen: {config.freeze_encoder}) |",
        f"| LLM | `{config.llm_model_name_or_path}`{gguf} (frozen: {config.freeze_llm}) |",
        f"| projector | `{config.projector}`, {config.encoder_projector_ds_rate} encoder frames per token, hidden size {config.projector_hidden_size}, {counts.get('projector', 0):,} parameters |",
        f"| LoRA | {lora} |",
        f"| prompt | `{config.prompt}` |",
        f"| system prompt | {system} |",
        f"| chat template | {template} |",
        f"| trained tensors | {sum(counts.values()):,} parameters in `model.safetensors` |",
        f"| decoding (`decode_conf`) | {decoding_summary(config)} |",
        "",
        "## Training",
        "",
    ]
    if summary:
        steps = summary.get("global_step")
        lines.append(
            f"- steps: {steps}"
            + (f" of {summary['max_steps']}" if summary.get("max_steps") else "")
        )
        if summary.get("epoch") is not None:
            lines.append(f"- epochs: {summary['epoch']:.2f}")
        if "final_loss" in summary:
            lines.append(
                f"- final training loss: {summary['final_loss']:.4f} (step {summary.get('final_loss_step')})"
            )
        if "train_loss" in summary:
            lines.append(f"- mean training loss: {summary['train_loss']:.4f}")
        if "final_eval_loss" in summary:
            lines.append(f"- final eval loss: {summary['final_eval_loss']:.4f}")
    else:
        lines.append("- no trainer_state.json was found beside the checkpoint")
    lines.append(f"- exported from `{source}`")
    lines += [
        "",
        "## Use",
        "",
        "```bash",
        "# with WeST installed (pip install -e . in a WeST checkout)",
        f"west-transcribe --model_dir {out} a.wav b.flac",
        f"west-transcribe --model_dir {out} --output text data/test/wav.scp",
        "```",
        "",
        "```python",
        "import west",
        "",
        f'model = west.load("{out}", device="cpu")',
        'print(model.transcribe(["a.wav", "b.flac"]))',
        "```",
        "",
        "The model decodes as its recipe did (the decoding row above, saved in",
        "`west_config.json`); `--beam`, `--ctc_weight` and the other decoding flags override it.",
        "If the encoder or the LLM lives elsewhere on your machine, point to it with",
        "`--whisper_model_name_or_path` / `--llm_model_name_or_path` (or the same keyword",
        "arguments of `west.load`). Recordings longer than 30 s are cut at pauses and",
        "decoded in pieces.",
        "",
        "## Files",
        "",
        "- `model.safetensors`: the trained projector"
        + (" and LoRA adapters" if config.lora_rank > 0 else ""),
        "- `west_config.json`: the model configuration (`west.config.ModelArguments`)",
        "- `README.md`: this card",
    ]
    if config.chat_template == "chat_template.jinja":
        lines.append("- `chat_template.jinja`: the chat template used in training")
    return "\n".join(lines) + "\n"


def decoding_summary(config: ModelArguments) -> str:
    """How the model decodes by default (its decode_conf), in words for the card."""
    d = config.decode.resolve(config.ctc.weight > 0)
    joint = f"joint CTC / LLM, CTC weight {d.ctc_weight:g}" if d.ctc_weight else "the LLM alone"
    search = "greedy" if d.num_beams == 1 else f"beam {d.num_beams}"
    return (
        f"{search}, {joint}, engine `{d.engine}`, at most {d.max_new_tokens} tokens a window "
        f"and {d.max_tokens_per_second:g} a second of audio"
    )
