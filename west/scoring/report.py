"""Format scores exactly as Kaldi's ``compute-wer`` prints them, plus the filtered lines.

::

    %WER 7.45 [ 7807 / 104765, 340 ins, 497 del, 6970 sub ]
    %SER 59.03 [ 1547 / 2620 ]
    Scored 2620 sentences, 0 not present in hyp.

As in Kaldi, `` [PARTIAL]`` ends the WER line when some references had no hypothesis.
With a hallucination filter two lines follow::

    %WER(filtered) 6.29 [ 6590 / 104700, 120 ins, 480 del, 5990 sub ]
    %WER raw/filtered 7.45/6.29 (3 hallucinations filtered)

With a biasing list (``--biasing``, see west/scoring/biasing.py) two lines follow, in the
same form, for the biased reference tokens and for the others::

    %B-WER 14.29 [ 12 / 84, 1 ins, 2 del, 9 sub ]
    %U-WER 7.40 [ 7795 / 104681, 339 ins, 495 del, 6961 sub ]

A rate over zero reference words (or sentences) is printed as ``undefined``.
"""

from __future__ import annotations

import struct

from west.scoring.align import Counts
from west.scoring.wer import Summary

UNDEFINED = "undefined"


def percent(value: float | None) -> str:
    """Two decimals as Kaldi prints them, or ``undefined``.

    Kaldi keeps the rate in a 32-bit float before printing, which decides the last digit of
    about one rate in a thousand (98.05499.. is 98.055 as a float32, printed ``98.06``).
    """
    if value is None:
        return UNDEFINED
    (as_float32,) = struct.unpack("f", struct.pack("f", value))
    return f"{as_float32:.2f}"


def counts_line(tag: str, c: Counts, partial: bool = False) -> str:
    """``<tag> 7.45 [ 7807 / 104765, 340 ins, 497 del, 6970 sub ]`` (`` [PARTIAL]``)."""
    rate = 100.0 * c.errors / c.ref_len if c.ref_len else None
    return (
        f"{tag} {percent(rate)} [ {c.errors} / {c.ref_len}, "
        f"{c.ins} ins, {c.dele} del, {c.sub} sub ]{' [PARTIAL]' if partial else ''}"
    )


def wer_line(summary: Summary, tag: str = "%WER") -> str:
    """``%WER 7.45 [ 7807 / 104765, 340 ins, 497 del, 6970 sub ]``."""
    return counts_line(tag, summary.counts, bool(summary.missing))


def ser_line(summary: Summary) -> str:
    """``%SER 59.03 [ 1547 / 2620 ]``."""
    return f"%SER {percent(summary.ser)} [ {summary.sentence_errors} / {summary.sentences} ]"


def scored_line(summary: Summary) -> str:
    """``Scored 2620 sentences, 0 not present in hyp.``."""
    return f"Scored {summary.sentences} sentences, {summary.missing} not present in hyp."


def kaldi_lines(summary: Summary) -> list[str]:
    """The three lines of Kaldi's ``compute-wer``."""
    return [wer_line(summary), ser_line(summary), scored_line(summary)]


def filtered_lines(raw: Summary, filtered: Summary, n_filtered: int) -> list[str]:
    """The filtered WER in Kaldi form and the ``raw/filtered`` summary line."""
    noun = "hallucination" if n_filtered == 1 else "hallucinations"
    return [
        wer_line(filtered, tag="%WER(filtered)"),
        f"%WER raw/filtered {percent(raw.wer)}/{percent(filtered.wer)} "
        f"({n_filtered} {noun} filtered)",
    ]


def biasing_lines(biased: Counts, unbiased: Counts, partial: bool = False) -> list[str]:
    """``%B-WER`` and ``%U-WER``: the errors on biasing-list tokens and on the others."""
    return [counts_line("%B-WER", biased, partial), counts_line("%U-WER", unbiased, partial)]
