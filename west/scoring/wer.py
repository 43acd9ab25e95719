"""Score hypothesis transcripts against references, utterance by utterance.

Every reference utterance is scored: one without a hypothesis counts as all deletions
(Kaldi ``compute-wer --mode=all``) and is marked ``missing``. A hypothesis whose key has no
reference is an error, since it usually means the two files come from different test sets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from west.scoring.align import Counts, EditOp, align, count_ops
from west.scoring.hallucination import hallucination_reason


class UnknownKeyError(KeyError):
    """A hypothesis utterance id that is not in the reference."""

    def __init__(self, key: str, hyp_name: str) -> None:
        super().__init__(key)
        self.key = key
        self.message = (
            f"{hyp_name}: utterance '{key}' has no reference; "
            "expected every hypothesis id to appear in the reference file"
        )

    def __str__(self) -> str:
        return self.message


@dataclass
class UttScore:
    """The alignment of one utterance."""

    key: str
    ref_text: str
    hyp_text: str
    ops: list[EditOp]
    counts: Counts
    missing: bool = False
    hallucination: str | None = None  # reason, see west.scoring.hallucination


@dataclass
class Summary:
    """Totals over a set of utterances, as Kaldi's ``compute-wer`` reports them."""

    counts: Counts
    sentences: int
    sentence_errors: int
    missing: int

    @property
    def wer(self) -> float | None:
        """Percent WER, or None when there are no reference tokens (undefined)."""
        n = self.counts.ref_len
        return 100.0 * self.counts.errors / n if n else None

    @property
    def ser(self) -> float | None:
        """Percent sentence error rate, or None when no sentence was scored."""
        return 100.0 * self.sentence_errors / self.sentences if self.sentences else None


def score_utterances(
    refs: Mapping[str, str],
    hyps: Mapping[str, str],
    tokenize: Callable[[str], list[str]],
    normalize: Callable[[str], str],
    detect_hallucinations: bool = False,
    hyp_name: str = "hypothesis",
) -> list[UttScore]:
    """Align every reference utterance with its hypothesis, in reference order.

    Raises:
        UnknownKeyError: a key of ``hyps`` is not in ``refs`` (``hyp_name`` names the file).
    """
    for key in hyps:
        if key not in refs:
            raise UnknownKeyError(key, hyp_name)
    scores = []
    for key, ref_text in refs.items():
        missing = key not in hyps
        hyp_text = hyps.get(key, "")
        ref_tokens = tokenize(normalize(ref_text))
        hyp_tokens = tokenize(normalize(hyp_text)) if not missing else []
        ops = align(ref_tokens, hyp_tokens)
        reason = None
        if detect_hallucinations and not missing:
            reason = hallucination_reason(ref_text, hyp_text, ref_tokens, hyp_tokens)
        scores.append(UttScore(key, ref_text, hyp_text, ops, count_ops(ops), missing, reason))
    return scores


def summarize(scores: Iterable[UttScore]) -> Summary:
    """Total the counts of ``scores``."""
    total, sentences, sentence_errors, missing = Counts(), 0, 0, 0
    for s in scores:
        total = total + s.counts
        sentences += 1
        sentence_errors += s.counts.errors > 0
        missing += s.missing
    return Summary(total, sentences, sentence_errors, missing)
