"""Repetition loops: a decoder that writes the same words over and over.

An LLM decoder that has lost its place in the audio (noise, a long window, a beam that
prefers fluent text) falls into a loop: one sentence ten times, or "dear dear dear ...".
A loop here is a tail of the token sequence made of one block of `period` tokens repeated
at least `min_repeats` times in a row, the repeats covering at least `min_tokens` tokens
(so "very very" and "no no no" stay: real speech repeats a word or two, not three
copies of a phrase, nor six of one word). Cutting a loop keeps its first copy.

The search (west.models.search) checks every new token: greedy search ends a row that
closes a loop, beam search drops the candidates that would; `cut_loop` cleans any
engine's output after the fact.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_REPEATS = 3  # copies of a block in a row
MIN_TOKENS = 6  # tokens the copies cover: a one-token block needs 6 copies
MAX_PERIOD = 64  # longest block looked for, in tokens (a long sentence)


def loop_start(
    tokens: Sequence[int],
    min_repeats: int = MIN_REPEATS,
    min_tokens: int = MIN_TOKENS,
    max_period: int = MAX_PERIOD,
) -> int | None:
    """Where the second copy of a loop that ends `tokens` starts (cutting there keeps one
    copy), or None when `tokens` do not end in a loop. The shortest block wins."""
    n = len(tokens)
    last = tokens[-1] if n else None
    for period in range(1, min(max_period, n // min_repeats) + 1):
        if tokens[n - 1 - period] != last:
            continue
        block = list(tokens[n - period :])
        copies = 1
        while (copies + 1) * period <= n and list(
            tokens[n - (copies + 1) * period : n - copies * period]
        ) == block:
            copies += 1
        if copies >= min_repeats and copies * period >= min_tokens:
            return n - (copies - 1) * period
    return None


def cut_loop(tokens: Sequence[int], **limits) -> tuple[list[int], bool]:
    """`tokens` cut where their first loop closes, keeping its first copy (anything after
    a loop is the loop running on, or cut short by the token cap); and whether one was found.
    `limits`: loop_start's."""
    tokens = list(tokens)
    for end in range(1, len(tokens) + 1):
        start = loop_start(tokens[:end], **limits)
        if start is not None:
            return tokens[:start], True
    return tokens, False
