"""Per-utterance alignments in the layout of Kaldi's ``wer_per_utt_details.pl``::

    1272-128104-0000 ref   mister quilter is the apostle of ***  middle classes
    1272-128104-0000 hyp   mister quilter is the apostle of the  middle class
    1272-128104-0000 op    C      C       C  C   C       C  I    C      S
    1272-128104-0000 #csid 8 1 1 0

Gaps are ``***`` (Kaldi ``align-text``'s default special symbol) and columns are padded to the
same display width (CJK characters count as two columns). Utterances with the most errors
come first (ties by key). A reference without hypothesis adds ``<key> #missing`` and a
filtered hallucination ``<key> #hallucination <reason>`` after its ``#csid`` line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import TextIO

from west.scoring.wer import UttScore

GAP = "***"


def display_width(text: str) -> int:
    """Terminal columns taken by ``text`` (wide and full-width characters count two)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - display_width(text))


def utterance_lines(score: UttScore) -> list[str]:
    """The ``ref``/``hyp``/``op``/``#csid`` lines (and markers) for one utterance."""
    refs, hyps, ops = [], [], []
    for o in score.ops:
        r, h = o.ref if o.ref is not None else GAP, o.hyp if o.hyp is not None else GAP
        width = max(display_width(r), display_width(h))
        refs.append(_pad(r, width))
        hyps.append(_pad(h, width))
        ops.append(_pad(o.op, width))
    key, c = score.key, score.counts
    lines = [
        " ".join([key, "ref  ", *refs]).rstrip(),
        " ".join([key, "hyp  ", *hyps]).rstrip(),
        " ".join([key, "op   ", *ops]).rstrip(),
        f"{key} #csid {c.cor} {c.sub} {c.ins} {c.dele}",
    ]
    if score.missing:
        lines.append(f"{key} #missing")
    if score.hallucination:
        lines.append(f"{key} #hallucination {score.hallucination}")
    return lines


def write_details(scores: Iterable[UttScore], out: TextIO) -> None:
    """Write every utterance's alignment, most errors first."""
    for score in sorted(scores, key=lambda s: (-s.counts.errors, s.key)):
        out.write("\n".join(utterance_lines(score)) + "\n")
