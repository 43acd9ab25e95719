"""Rare words and biasing lists, as the LibriSpeech biasing benchmark builds them.

Le et al. (2021), "Contextualized streaming end-to-end speech recognition with trie-based
deep biasing and shallow fusion": the common words are the most frequent words of the
training transcripts (5,000 for LibriSpeech), every other word is rare; a test utterance's
biasing list is its own rare words plus N distractors drawn from the rare words, shuffled.
tools/biasing_lists.py builds a test set's lists with it, benchmarks/bench_hotwords.py
measures them, and context_conf training draws its lists from the same split
(west.models.context.ContextSampler). Standard library only.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

UNITS = ("word", "char")


@dataclass
class Vocabulary:
    """The common words, and the rare words distractors are drawn from (sorted, so that a
    seeded draw does not depend on the order of a set)."""

    common: set[str]
    rare: list[str]


def build_vocabulary(
    train_texts: Iterable[str], extra_texts: Iterable[str] = (), num_common: int = 5000
) -> Vocabulary:
    """Common words: the ``num_common`` most frequent of ``train_texts``; rare: all others,
    with the words of ``extra_texts``."""
    counts = Counter(w for text in train_texts for w in text.split())
    ranked = sorted(counts, key=lambda w: (-counts[w], w))
    common = set(ranked[:num_common])
    rare = set(ranked[num_common:])
    for text in extra_texts:
        rare.update(text.split())
    return Vocabulary(common, sorted(rare - common))


def own_rare_words(words: Sequence[str], common: set[str]) -> list[str]:
    """The words of an utterance that are not common, each once, in order."""
    return list(dict.fromkeys(w for w in words if w not in common))


def draw(
    pool: Sequence[str], n: int, allowed: Callable[[str], bool], rng: random.Random
) -> list[str]:
    """``n`` allowed items of ``pool`` at random, without replacement (fewer when it lacks them).

    A sample a little larger than ``n`` is filtered: cheap with a pool of a million words;
    only when too few of it are allowed is the whole pool shuffled.
    """
    if n <= 0 or not pool:
        return []
    k = min(len(pool), 2 * n + 16)
    while True:
        picked = [w for w in rng.sample(pool, k) if allowed(w)][:n]
        if len(picked) == n or k == len(pool):
            return picked
        k = len(pool)


def biasing_list(
    key: str,
    words: Sequence[str],
    vocab: Vocabulary,
    distractors: int,
    seed: int = 0,
    unit: str = "word",
) -> list[str]:
    """The list of one utterance: its rare words and ``distractors`` others, shuffled."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit '{unit}', expected one of {', '.join(UNITS)}")
    rng = random.Random(f"{seed}:{key}")
    own = set(words)
    chars = "".join(words)

    def allowed(w: str) -> bool:
        return w not in own and not (unit == "char" and w in chars)

    entries = own_rare_words(words, vocab.common) + draw(vocab.rare, distractors, allowed, rng)
    rng.shuffle(entries)
    return entries
