"""The causal LLM: loading (folder, hub name or GGUF), LoRA, and the chat prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

SPEECH_PLACEHOLDER = "<|west_speech|>"


def load_llm(
    name_or_path: str, gguf_file: str | None = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """Any transformers causal LM, or a GGUF file (dequantised by transformers)."""
    kwargs = {}
    if gguf_file is not None:
        gguf = Path(gguf_file)
        if gguf.is_file() and not (Path(name_or_path) / gguf.name).is_file():
            name_or_path, gguf_file = str(gguf.parent), gguf.name
        kwargs["gguf_file"] = gguf_file
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype, **kwargs)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def add_lora(llm: torch.nn.Module, rank: int, alpha: int, dropout: float, targets: str):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=[t.strip() for t in targets.split(",") if t.strip()],
        task_type="CAUSAL_LM",
    )
    return get_peft_model(llm, config)


def lora_parameters(llm: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The LoRA adapters' parameters (none without LoRA), found by PEFT's layer type."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:  # no peft, so no adapters
        return []
    params = []
    for module in llm.modules():
        if isinstance(module, BaseTunerLayer):
            for name in module.adapter_layer_names:
                params += list(getattr(module, name).parameters())
    return params


@dataclass
class Prompt:
    """Token ids around the speech: prefix + <speech> + suffix, then the answer + end_id.

    The prefix may be empty (speech first, `speech_position="start"`).
    """

    prefix_ids: list[int]
    suffix_ids: list[int]
    end_id: int  # token that closes the assistant's turn


# Where the speech goes in the chat prompt:
#   user:  at the start of the user turn, after the template's system turn and user tag
#          (WeST's default: the LLM reads the speech as part of what the user says);
#   start: before the whole templated prompt, as the 2024 reference (wenet-e2e/west) did:
#          speech, then system turn, user turn with the instruction, assistant tag.
SPEECH_POSITIONS = ("user", "start")


def build_prompt(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    system_prompt: str | None = None,
    chat_template: str | None = None,
    speech_position: str = "user",
) -> Prompt:
    """Render the chat template once with a placeholder where the speech goes.

    `speech_position` (one of SPEECH_POSITIONS) says where that is. The token ending the
    assistant turn is read from the template itself (what follows the answer), so no
    per-LLM switch is needed.
    """
    if speech_position not in SPEECH_POSITIONS:
        raise ValueError(f"speech_position {speech_position!r}: expected one of {SPEECH_POSITIONS}")
    # A template is Jinja text ('{%', '{{') or the path of a file holding it.
    if chat_template is not None and "{" not in chat_template and Path(chat_template).is_file():
        chat_template = Path(chat_template).read_text()
    template = chat_template or tokenizer.chat_template
    if template is None:
        raise ValueError(
            f"{tokenizer.name_or_path}: tokenizer has no chat template; give --chat_template "
            "(a Jinja string or file)"
        )
    messages = [] if system_prompt is None else [{"role": "system", "content": system_prompt}]
    in_turn = SPEECH_PLACEHOLDER if speech_position == "user" else ""
    messages.append({"role": "user", "content": in_turn + instruction})
    text = tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
    )
    if speech_position == "user":
        prefix, suffix = text.split(SPEECH_PLACEHOLDER)
    else:
        prefix, suffix = "", text
    answer = "WESTANSWER"
    full = tokenizer.apply_chat_template(
        messages + [{"role": "assistant", "content": answer}],
        chat_template=template,
        tokenize=False,
    )
    after = full.split(answer, 1)[1]
    after_ids = tokenizer(after, add_special_tokens=False).input_ids
    end_id = after_ids[0] if after_ids else tokenizer.eos_token_id
    encode = lambda s: tokenizer(s, add_special_tokens=False).input_ids if s else []  # noqa: E731
    return Prompt(encode(prefix), encode(suffix), end_id)


def stop_token_ids(
    llm: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompt: Prompt
) -> list[int]:
    """End-of-turn and end-of-text ids from the prompt, tokenizer and generation config."""
    ids = {prompt.end_id}
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    gen = getattr(llm, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(eos)
    return sorted(ids)
