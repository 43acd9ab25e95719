"""Format scores exactly as Kaldi's ``compute-wer`` prints them, plus the filtered lines.

::

    %WER 7.45 [ 7807 / 104765, 340 ins, 497 del, 6970 sub ]
    %SER 59.03 [ 1547 / 2620 ]
    Scored 2620 sentences, 0 not present in hyp.

As in Kaldi, `` [PARTIAL]`` ends the WER line when some references had no hypothesis.
With a hallucination filter two lines follow::

    %WER(filtered) 6.29 [ 6590 / 104700, 120 ins, 480 del, 5990 sub ]
    %WER raw/filtered 7.45/6.29 (3 hallucinations filtered)

A rate over zero reference words (or sentences) is printed as ``undefined``.
"""

from __future__ import annotations

import struct

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


def wer_line(summary: Summary, tag: str = "%WER") -> str:
    """``%WER 7.45 [ 7807 / 104765, 340 ins, 497 del, 6970 sub ]``."""
    c = summary.counts
    partial = " [PARTIAL]" if summary.missing else ""
    return (
        f"{tag} {percent(summary.wer)} [ {c.errors} / {c.ref_len}, "
        f"{c.ins} ins, {c.dele} del, {c.sub} sub ]{partial}"
    )


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
