"""B-WER and U-WER: the error rate on the words of a biasing list, and on all the others.

The definition of Le et al. (2021), "Contextualized streaming end-to-end speech recognition
with trie-based deep biasing and shallow fusion", as scored in fbai-speech's is21_deep_bias
benchmark, extended to phrases and to characters. Reference and hypothesis are normalised,
tokenised and aligned exactly as for the WER (:mod:`west.scoring.wer`); then, per utterance:

* a reference token is *biased* when it lies inside an occurrence, in that reference, of an
  entry of the utterance's biasing list (normalised and tokenised as the texts are, so a
  phrase of several words, or in ``char`` mode a Chinese word, matches as a run of tokens);
* a substitution or deletion of a biased reference token counts to B-WER, of another to
  U-WER; a correct token counts to the length of its side;
* an insertion counts to B-WER when the inserted token is a token of one of the entries, to
  U-WER otherwise.

B-WER = biased errors / biased reference tokens, U-WER likewise; the two error counts add up
to the WER's, and so do the two lengths. ``west-score`` prints them as ``%B-WER`` and
``%U-WER`` in every mode, as it prints ``%WER`` for a CER (the table labels them B-CER and
U-CER where the test set's metric is CER).

A biasing file is one of two formats, told apart by its first line that is not blank or a
``#`` comment:

* jsonl (that line starts with ``{``): a data list, one utterance per line, with ``"key"`` and
  ``"context": ["word", "a phrase", ...]``; other keys are ignored, an utterance without
  ``"context"`` has an empty list (but some line must have one);
* a phrase list: one word or phrase per line, ``#`` comments and blank lines skipped, the
  same list for every utterance (the hotwords file of ``west-recognize --hotwords``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from west.data.kaldi import text_lines
from west.scoring.align import CORRECT, DEL, INS, SUB, Counts, EditOp
from west.scoring.textio import TextFileError
from west.scoring.wer import UttScore

JSONL_EXAMPLE = '{"key": "utt1", "context": ["word", "a phrase"]}'


@dataclass
class BiasingLists:
    """The biasing list of every utterance: its own (jsonl) or one shared list (phrase list)."""

    path: str
    per_utterance: dict[str, list[str]] = field(default_factory=dict)
    shared: list[str] | None = None

    def get(self, key: str) -> list[str] | None:
        """The list of utterance ``key``; None when a jsonl file has no line for it."""
        return self.shared if self.shared is not None else self.per_utterance.get(key)


def _read_jsonl(path: str, lines: list[tuple[int, str]]) -> BiasingLists:
    lists = BiasingLists(path)
    first_line: dict[str, int] = {}
    with_context = 0
    for n, text in lines:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise TextFileError(
                f"{path}:{n}: not valid JSON ({e.msg}); expected a jsonl line like {JSONL_EXAMPLE}"
            ) from None
        if not isinstance(obj, dict) or not isinstance(obj.get("key"), str):
            raise TextFileError(f'{path}:{n}: no "key" string; expected {JSONL_EXAMPLE}')
        key = obj["key"]
        if key in first_line:
            raise TextFileError(f"{path}:{n}: key '{key}' again (line {first_line[key]})")
        first_line[key] = n
        context = obj.get("context")
        if context is None:
            continue
        if not isinstance(context, list) or not all(isinstance(c, str) for c in context):
            raise TextFileError(
                f"{path}:{n}: \"context\" of '{key}' is not a list of strings; "
                f"expected {JSONL_EXAMPLE}"
            )
        lists.per_utterance[key] = context
        with_context += 1
    if not with_context:
        raise TextFileError(
            f'{path}: no line has a "context" list; expected lines like {JSONL_EXAMPLE}, '
            "or a plain list of phrases, one per line"
        )
    return lists


def _read_phrases(path: str, lines: list[tuple[int, str]]) -> BiasingLists:
    phrases, first = [], None
    for n, text in lines:
        phrase = text.strip()
        if phrase.startswith("#"):
            continue
        if phrase.startswith("{"):  # (the first phrase does not: that would be jsonl)
            raise TextFileError(
                f"{path}:{n}: a JSON line in a list of phrases (line {first} is a phrase); "
                "expected one word or phrase per line, or jsonl lines throughout"
            )
        first = first or n
        phrases.append(phrase)
    if not phrases:
        raise TextFileError(f"{path}: no phrase; expected one word or phrase per line")
    return BiasingLists(path, shared=phrases)


def read_biasing_file(path: str) -> BiasingLists:
    """Read a jsonl of per-utterance ``"context"`` lists, or a phrase list for every utterance.

    Raises:
        TextFileError: a malformed line (message: ``file:line: what was expected``).
        OSError: if the file cannot be opened.
    """
    lines = list(text_lines(path))
    significant = [text.strip() for _, text in lines if not text.strip().startswith("#")]
    if significant and significant[0].startswith("{"):
        return _read_jsonl(str(path), lines)
    return _read_phrases(str(path), lines)


def entry_tokens(
    phrases: Iterable[str],
    tokenize: Callable[[str], list[str]],
    normalize: Callable[[str], str],
    cache: dict[str, tuple[str, ...]] | None = None,
) -> list[tuple[str, ...]]:
    """Each phrase normalised and tokenised as the texts are; phrases left empty are dropped.

    ``cache`` (phrase -> tokens) saves normalising the same phrase again for every utterance.
    """
    cache = {} if cache is None else cache
    out = []
    for phrase in phrases:
        tokens = cache.get(phrase)
        if tokens is None:
            tokens = cache[phrase] = tuple(tokenize(normalize(phrase)))
        if tokens:
            out.append(tokens)
    return out


def biased_positions(ref: Sequence[str], entries: Iterable[tuple[str, ...]]) -> list[bool]:
    """For each reference token, whether it lies inside an occurrence of an entry."""
    by_first: dict[str, set[tuple[str, ...]]] = {}
    for e in entries:
        by_first.setdefault(e[0], set()).add(e)
    biased = [False] * len(ref)
    for i, token in enumerate(ref):
        for e in by_first.get(token, ()):
            if tuple(ref[i : i + len(e)]) == e:
                biased[i : i + len(e)] = [True] * len(e)
    return biased


def split_counts(
    ops: Sequence[EditOp], entries: Sequence[tuple[str, ...]]
) -> tuple[Counts, Counts]:
    """``(biased, unbiased)`` counts of one aligned utterance whose list is ``entries``."""
    biased = biased_positions([o.ref for o in ops if o.op != INS], entries)
    entry_words = {t for e in entries for t in e}
    b, u = Counts(), Counts()
    i = 0
    for o in ops:
        if o.op == INS:
            (b if o.hyp in entry_words else u).ins += 1
            continue
        c = b if biased[i] else u
        i += 1
        if o.op == CORRECT:
            c.cor += 1
        elif o.op == SUB:
            c.sub += 1
        elif o.op == DEL:
            c.dele += 1
    return b, u


def score_biasing(
    scores: Iterable[UttScore],
    lists: BiasingLists,
    tokenize: Callable[[str], list[str]],
    normalize: Callable[[str], str],
) -> tuple[Counts, Counts, list[str]]:
    """Total ``(biased, unbiased)`` counts of ``scores``, and the keys of the utterances
    that have no list (a jsonl without their line: none of their tokens is biased)."""
    cache: dict[str, tuple[str, ...]] = {}
    b_total, u_total, unlisted = Counts(), Counts(), []
    for s in scores:
        phrases = lists.get(s.key)
        if phrases is None:
            unlisted.append(s.key)
        b, u = split_counts(s.ops, entry_tokens(phrases or [], tokenize, normalize, cache))
        b_total, u_total = b_total + b, u_total + u
    return b_total, u_total, unlisted
