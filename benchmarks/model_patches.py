"""The two places a benchmark patches a model for the length of a `with` block.

`reference_padding` gives WeST's model the 2024 reference's LLM input (wenet-e2e/west, every
sequence right-padded to `model_max_length`), so both data paths are timed on one model;
`generated_tokens` counts the tokens each decoded utterance generated, for the FLOP floor.
"""

from __future__ import annotations

import contextlib

import torch.nn.functional as F

from west.models.speech_llm import IGNORE_ID, SpeechLLM


@contextlib.contextmanager
def reference_padding(model: SpeechLLM, max_length: int):
    """The 2024 reference's LLM input: every training sequence right-padded to `max_length`
    (masked, no loss), as it padded to `model_max_length`."""
    original = model._assemble

    def padded(speech, speech_lens, text_ids, left_pad, **kwargs):
        inputs, mask, labels = original(speech, speech_lens, text_ids, left_pad, **kwargs)
        extra = max_length - inputs.shape[1]
        if labels is not None and extra > 0:
            inputs = F.pad(inputs, (0, 0, 0, extra))
            mask = F.pad(mask, (0, extra))
            labels = F.pad(labels, (0, extra), value=IGNORE_ID)
        return inputs, mask, labels

    model._assemble = padded
    try:
        yield
    finally:
        del model._assemble


@contextlib.contextmanager
def generated_tokens(model: SpeechLLM, max_new_tokens: int):
    """Yields a list that gets, per decoded utterance, the tokens it generated (end token
    included if it came within the cap), read from the ids `generate` turns into text (the
    text, re-tokenised, loses special and whitespace tokens)."""
    counts: list[int] = []
    tokenizer = model.tokenizer
    stops = set(model.stop_ids)

    def batch_decode(ids, *args, **kwargs):
        for row in ids:
            row = [int(t) for t in row]
            cut = next((i for i, t in enumerate(row) if t in stops), len(row))
            counts.append(min(cut + 1, max_new_tokens))
        return type(tokenizer).batch_decode(tokenizer, ids, *args, **kwargs)

    tokenizer.batch_decode = batch_decode
    try:
        yield counts
    finally:
        del tokenizer.batch_decode
