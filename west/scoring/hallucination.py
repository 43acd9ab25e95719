"""What counts as a hallucination, decided in this one place.

An LLM-based recogniser sometimes answers instead of transcribing ("I apologize, but there is
no speech to transcribe"), loops on a phrase, or rambles far past the end of the audio. These
outputs dominate the WER of otherwise good systems, so ``west-score --filter_hallucinations``
reports the WER with and without them.

A hypothesis is a hallucination when, compared with its reference, at least one of these holds
(checked in this order; the first that holds is the reason reported):

1. ``refusal``: after canonicalisation (NFKC, lower case, curly apostrophes straightened,
   ``n't``/``'m``/``cannot`` expanded, punctuation removed) it contains one of
   :data:`REFUSAL_PATTERNS` (an apology, refusal or chat reply) that the canonicalised reference
   does not contain, so a speaker really saying "I'm sorry" is not filtered.
2. ``repetition``: some n-gram (n = 1 .. :data:`MAX_NGRAM`) of the scored hypothesis tokens is
   repeated back to back at least :data:`MIN_REPEATS` times more than the reference's longest
   back-to-back run of the same n-gram, and the repeated run covers at least
   :data:`MIN_COVERAGE` of the hypothesis tokens.
3. ``too_long``: the hypothesis has more than ``LENGTH_RATIO * len(ref) + LENGTH_SLACK`` scored
   tokens. The reference length stands in for the audio duration, which the scorer does not
   see: a reference of N tokens is taken as the most the audio could hold, with room to spare.

Tokens are the scoring units (words, or characters in ``char`` mode) after normalisation.
A missing hypothesis is never a hallucination (it is scored as deletions).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

REFUSAL = "refusal"
REPETITION = "repetition"
TOO_LONG = "too_long"

REFUSAL_PATTERNS: tuple[str, ...] = (
    "i apologize",
    "i apologise",
    "my apologies",
    "i am sorry",
    "sorry but",
    "as an ai",
    "as a language model",
    "there is no speech",
    "there is no audio",
    "no speech to transcribe",
    "no audio",
    "can not transcribe",
    "unable to transcribe",
    "not able to transcribe",
    "can not help with",
    "can not assist",
    "please provide",
    # Chinese replies of the same kinds
    "抱歉",
    "无法转录",
    "无法识别",
    "无法听清",
    "没有语音",
    "没有检测到",
    "作为一个人工智能",
    "作为ai",
    "作为一个ai",
)
MAX_NGRAM = 4
MIN_REPEATS = 4
MIN_COVERAGE = 0.5
LENGTH_RATIO = 2.0
LENGTH_SLACK = 10

_EXPANSIONS = ((re.compile(r"n't\b"), " not"), (re.compile(r"'m\b"), " am"))
_CANNOT = re.compile(r"\bcannot\b")
_NON_WORD = re.compile(r"[^\w']+")


def _pattern(phrase: str) -> re.Pattern[str]:
    # Latin phrases must match whole words ("no audio" not in "piano audios");
    # CJK text has no spaces, so its phrases match anywhere.
    if phrase.isascii():
        return re.compile(rf"(?<![\w']){re.escape(phrase)}(?![\w'])")
    return re.compile(re.escape(phrase))


_REFUSALS = tuple(_pattern(p) for p in REFUSAL_PATTERNS)


def canonical(text: str) -> str:
    """The form refusal patterns are matched against (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    for pattern, repl in _EXPANSIONS:
        text = pattern.sub(repl, text)
    text = _CANNOT.sub("can not", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def refusal_phrase(hyp_text: str, ref_text: str = "") -> str | None:
    """The first refusal pattern found in ``hyp_text`` but not in ``ref_text``, else None."""
    hyp, ref = canonical(hyp_text), canonical(ref_text)
    for phrase, pattern in zip(REFUSAL_PATTERNS, _REFUSALS):
        if pattern.search(hyp) and not pattern.search(ref):
            return phrase
    return None


def longest_run(tokens: Sequence[str], ngram: Sequence[str]) -> int:
    """Most back-to-back repetitions of ``ngram`` anywhere in ``tokens``."""
    n, best = len(ngram), 0
    ngram = tuple(ngram)
    for i in range(len(tokens) - n + 1):
        k = 0
        while tuple(tokens[i + k * n : i + (k + 1) * n]) == ngram:
            k += 1
        best = max(best, k)
    return best


def repeated_ngram(
    hyp: Sequence[str], ref: Sequence[str] = ()
) -> tuple[tuple[str, ...], int] | None:
    """An (n-gram, repeat count) making ``hyp`` a repetition hallucination, else None."""
    total = len(hyp)
    for n in range(1, MAX_NGRAM + 1):
        # A run of period n is a stretch of positions j with hyp[j] == hyp[j + n].
        j = 0
        while j + n < total:
            if hyp[j] != hyp[j + n]:
                j += 1
                continue
            start = j
            while j + n < total and hyp[j] == hyp[j + n]:
                j += 1
            repeats = (j - start + n) // n
            if repeats < MIN_REPEATS or repeats * n < MIN_COVERAGE * total:
                continue
            ngram = tuple(hyp[start : start + n])
            if repeats - longest_run(ref, ngram) >= MIN_REPEATS:
                return ngram, repeats
    return None


def too_long(hyp: Sequence[str], ref: Sequence[str]) -> bool:
    """True when ``hyp`` is longer than its reference could plausibly hold."""
    return len(hyp) > LENGTH_RATIO * len(ref) + LENGTH_SLACK


def hallucination_reason(
    ref_text: str, hyp_text: str, ref_tokens: Sequence[str], hyp_tokens: Sequence[str]
) -> str | None:
    """``refusal``, ``repetition`` or ``too_long`` if the hypothesis is a hallucination, else None.

    Args:
        ref_text, hyp_text: the transcripts as written (refusal patterns are matched on these).
        ref_tokens, hyp_tokens: the normalised scoring tokens (repetition and length rules).
    """
    if refusal_phrase(hyp_text, ref_text) is not None:
        return REFUSAL
    if repeated_ngram(hyp_tokens, ref_tokens) is not None:
        return REPETITION
    if too_long(hyp_tokens, ref_tokens):
        return TOO_LONG
    return None
