"""Levenshtein alignment of a reference and a hypothesis token sequence, with backtrace.

Unit costs (substitution, insertion, deletion = 1, match = 0). :func:`align` runs rapidfuzz's
C++ Levenshtein (bit-parallel, Hirschberg's linear-memory split on long inputs; rapidfuzz is
installed with jiwer): a 5,000-word utterance takes milliseconds and a few MB, where the
textbook table took 9 s and 965 MB. :func:`align_reference` is that textbook
O(len(ref) * len(hyp)) programme, kept as the specification of the tie-break below, as the
fallback when rapidfuzz is not installed, and for the tests.

Among alignments of equal cost, the one returned is the one jiwer (>= 3.0, through rapidfuzz)
returns, so per-type counts (S/I/D) agree with it and not just the total:

1. a common prefix and a common suffix are matched first and left out of the table;
2. the backtrace walks from the end and, at each cell, prefers
   a *deletion* (the last reference token is unmatched) if that is optimal,
   else an *insertion* judged one hypothesis position back
   (``D[i][j-1] == D[i-1][j-1] - 1`` where ``D[i][j]`` is the cost of ref[:i] vs hyp[:j]),
   else the diagonal (match or substitution).

Kaldi's ``compute-wer`` and WeNet's ``compute-wer.py`` break ties differently: where an
insertion plus a deletion costs the same as substitutions (ref ``a b``, hyp ``b c``: two
substitutions, or delete ``a``, match ``b``, insert ``c``), they prefer the insertion and
deletion. So on 3-6 % of utterances their S/I/D split differs; the total is always the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

try:
    from rapidfuzz.distance import Levenshtein
except ImportError:  # pragma: no cover - rapidfuzz comes with jiwer, a requirement
    Levenshtein = None

CORRECT, SUB, INS, DEL = "C", "S", "I", "D"


class EditOp(NamedTuple):
    """One aligned position: ``op`` in C/S/I/D; ``ref`` is None for I, ``hyp`` None for D.

    A named tuple rather than a frozen dataclass: a test set makes millions of them, and a
    tuple is built several times faster.
    """

    op: str
    ref: str | None
    hyp: str | None


@dataclass
class Counts:
    """Error counts of one or more aligned utterances."""

    cor: int = 0
    sub: int = 0
    ins: int = 0
    dele: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.ins + self.dele

    @property
    def ref_len(self) -> int:
        return self.cor + self.sub + self.dele

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.cor + other.cor,
            self.sub + other.sub,
            self.ins + other.ins,
            self.dele + other.dele,
        )


def _cost_table(ref: Sequence[str], hyp: Sequence[str]) -> list[list[int]]:
    """``table[j][i]`` = edit distance of ref[:i] and hyp[:j]; shape (len(hyp)+1, len(ref)+1)."""
    prev = list(range(len(ref) + 1))
    table = [prev]
    for j, h in enumerate(hyp, start=1):
        row = [j]
        cur = j  # table[j][i - 1]
        for i, r in enumerate(ref, start=1):
            diag = prev[i - 1] if r == h else prev[i - 1] + 1
            ins = prev[i] + 1  # hyp[j - 1] inserted
            dele = cur + 1  # ref[i - 1] deleted
            cur = diag if diag < ins else ins
            if dele < cur:
                cur = dele
            row.append(cur)
        table.append(row)
        prev = row
    return table


def align(ref: Sequence[str], hyp: Sequence[str]) -> list[EditOp]:
    """Minimum-cost alignment of ``ref`` and ``hyp`` as a list of :class:`EditOp`, in order."""
    if Levenshtein is None:
        return align_reference(ref, hyp)
    ops: list[EditOp] = []
    for tag, i1, i2, j1, j2 in Levenshtein.opcodes(ref, hyp):
        if tag == "equal":
            ops.extend(EditOp(CORRECT, t, t) for t in ref[i1:i2])
        elif tag == "replace":  # rapidfuzz's replace blocks pair tokens one to one
            ops.extend(EditOp(SUB, r, h) for r, h in zip(ref[i1:i2], hyp[j1:j2]))
        elif tag == "delete":
            ops.extend(EditOp(DEL, t, None) for t in ref[i1:i2])
        else:
            ops.extend(EditOp(INS, None, t) for t in hyp[j1:j2])
    return ops


def align_reference(ref: Sequence[str], hyp: Sequence[str]) -> list[EditOp]:
    """:func:`align` by the textbook table: O(len(ref) * len(hyp)) time and memory."""
    n, m = len(ref), len(hyp)
    pre = 0
    while pre < n and pre < m and ref[pre] == hyp[pre]:
        pre += 1
    suf = 0
    while suf < n - pre and suf < m - pre and ref[n - 1 - suf] == hyp[m - 1 - suf]:
        suf += 1
    r, h = ref[pre : n - suf], hyp[pre : m - suf]

    d = _cost_table(r, h)
    i, j = len(r), len(h)
    backwards: list[EditOp] = []
    while i and j:
        if d[j][i] == d[j][i - 1] + 1:
            i -= 1
            backwards.append(EditOp(DEL, r[i], None))
            continue
        j -= 1
        if j and d[j][i] == d[j][i - 1] - 1:
            backwards.append(EditOp(INS, None, h[j]))
            continue
        i -= 1
        backwards.append(EditOp(CORRECT if r[i] == h[j] else SUB, r[i], h[j]))
    while i:
        i -= 1
        backwards.append(EditOp(DEL, r[i], None))
    while j:
        j -= 1
        backwards.append(EditOp(INS, None, h[j]))

    ops = [EditOp(CORRECT, t, t) for t in ref[:pre]]
    ops.extend(reversed(backwards))
    ops.extend(EditOp(CORRECT, t, t) for t in ref[n - suf :])
    return ops


def count_ops(ops: Sequence[EditOp]) -> Counts:
    """Tally an alignment."""
    c = Counts()
    for o in ops:
        if o.op == CORRECT:
            c.cor += 1
        elif o.op == SUB:
            c.sub += 1
        elif o.op == INS:
            c.ins += 1
        else:
            c.dele += 1
    return c
