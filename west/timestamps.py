"""Word timestamps: the words of a decoded transcript, each placed in the audio by the CTC
branch (west.models.ctc) through forced alignment (west.models.align).

The LLM's tokens are the transcript; the CTC branch scores each projected speech frame
(`frame_seconds` of audio, 0.1 s at the default ds rate 5) against CTC labels. Each token
is mapped to its labels by the branch's (V, K) table (`CTCHead.token_labels`: the token
itself, or with `vocab: chars` the characters it spells), the labels of all tokens are
force-aligned to the frames, and each word takes the frames of its tokens' labels:

- words: the transcript's text split at whitespace (a token whose text starts with a space
  starts a word); a CJK character (Han, kana) is a word of its own; punctuation stays with
  the word before it (opening brackets and quotes with the word after). Character offsets
  come from decoding token prefixes, so byte-level BPE pieces of one character (which
  decode to U+FFFD alone) go to the character they complete.
- times: start = the first frame of the word's first label x frame_seconds + offset, end =
  (the last frame of its last label + 1) x frame_seconds + offset, clipped to the window. A
  token of several characters but one label (a BPE token split across two CJK words) shares
  its frames evenly among its characters.
- with the window's samples, times are refined by where there is sound: a CTC branch
  fires on a word's first 100 ms and is blank for the rest of it, so its frames alone give
  good starts but ends far too early. The speech stretches of the window (`speech_runs`:
  10 ms steps loud enough for speech, gaps under 0.1 s bridged) then move a start to the
  onset of the stretch that holds the word's first label, if that onset lies at most two
  frames before it (and after the word before), and carry an end on to the end of the
  stretch that holds the word's last label: never past the next word's start, nor more
  than 1 s past that label.
- a token with no label (outside a `vocab: train` table, or a character a `vocab: chars`
  branch lacks) takes no frames: its word gets its times from its other tokens, or, if none
  of its tokens has a label, is placed between its aligned neighbours, over the part of
  the gap that holds speech (the speech stretches with the samples, else the frames whose
  CTC argmax is not blank; all of the gap if none), sharing it evenly with the other
  unaligned words there.
- labels that cannot fit the frames (more labels than frames) are spread evenly over them
  (west.models.align): the words stay in order, their times are rough.
- confidence: the geometric mean of the word's labels' posteriors over the frames aligned
  to them (exp of their mean log posterior), in [0, 1]; 0 for a word none of whose tokens
  has a label.

`" ".join(w.word for w in words)` is the transcript (whitespace collapsed) for languages
that separate words by spaces; `join_words` rebuilds it for CJK text too.
"""

from __future__ import annotations

import dataclasses
import math
import unicodedata
from collections.abc import Sequence

import numpy as np
import torch

from west.models.align import align

REPLACEMENT = "\ufffd"  # what a byte-level BPE piece of a character decodes to alone
ONSET_FRAMES = 2.0  # how far before its first label a word's onset may be found, in frames
MAX_TAIL_SECONDS = 1.0  # how far past its last label's first frame a word may be carried


@dataclasses.dataclass
class Word:
    """One word of a transcript: its text, its times in seconds from the recording's start,
    and how surely the CTC branch heard it (west.timestamps' module docstring)."""

    word: str
    start: float
    end: float
    confidence: float


# ---- text -----------------------------------------------------------------------------
def is_cjk(ch: str) -> bool:
    """A character that is a word of its own: Han ideographs, hiragana, katakana."""
    o = ord(ch)
    return (
        0x4E00 <= o <= 0x9FFF  # CJK unified ideographs
        or 0x3400 <= o <= 0x4DBF  # extension A
        or 0x20000 <= o <= 0x3134F  # extensions B-G
        or 0xF900 <= o <= 0xFAFF  # compatibility ideographs
        or 0x3040 <= o <= 0x30FF  # hiragana, katakana
        or 0x31F0 <= o <= 0x31FF  # katakana phonetic extensions
        or 0xFF66 <= o <= 0xFF9D  # halfwidth katakana
    )


def is_unspaced(ch: str) -> bool:
    """A character of a script written without spaces between words: CJK characters and
    CJK punctuation (、。「」, fullwidth ，！？)."""
    o = ord(ch)
    return is_cjk(ch) or 0x3000 <= o <= 0x303F or 0xFF00 <= o <= 0xFF65


def _is_punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"  # punctuation and symbols


def _is_opening(ch: str) -> bool:
    return unicodedata.category(ch) in ("Ps", "Pi")  # ( [ { « “ 「


def split_words(text: str) -> list[tuple[int, int]]:
    """The words of `text` as [start, end) character spans (the rules in the module
    docstring): 'Don't stop, 1,234.' -> Don't / stop, / 1,234.; '你好，世界' -> 你 / 好， /
    世 / 界; '我用Python写' -> 我 / 用 / Python / 写."""
    spans: list[list[int]] = []
    base = ""  # the open word's last character that is not punctuation ("" if none)
    open_word = False  # the last span may still grow
    for i, ch in enumerate(text):
        if ch.isspace():
            open_word = False
            continue
        if open_word:
            if is_cjk(ch):
                new = bool(base)  # unless only opening brackets came before
            elif _is_punct(ch):
                # opening brackets after CJK text open the next word; the rest stays
                new = _is_opening(ch) and is_unspaced(text[i - 1])
            else:  # a letter or digit: a new word after CJK text, not after Latin
                new = bool(base) and is_unspaced(base)
            if not new:
                spans[-1][1] = i + 1
                base = base if _is_punct(ch) else ch
                continue
        spans.append([i, i + 1])
        base = "" if _is_punct(ch) else ch
        open_word = True
    return [(a, b) for a, b in spans]


def join_words(words: Sequence[str]) -> str:
    """Words back into text: a space between two words, none where either side is written
    without spaces (CJK)."""
    out = ""
    for w in words:
        if out and w and not (is_unspaced(out[-1]) or is_unspaced(w[0])):
            out += " "
        out += w
    return out


def token_spans(tokenizer, token_ids: Sequence[int]) -> tuple[str, list[tuple[int, int, bool]]]:
    """The decoded text of `token_ids` (special tokens skipped) and each token's characters
    in it, [a, b), found by decoding every prefix; `pending` (third) when the token ends
    inside a character that a later token completes (a byte-level BPE piece)."""
    ids = list(token_ids)
    if not ids:
        return "", []
    prefixes = tokenizer.batch_decode(
        [ids[: k + 1] for k in range(len(ids))], skip_special_tokens=True
    )
    text = prefixes[-1]
    spans = []
    prev = 0
    for p in prefixes:
        whole = p.rstrip(REPLACEMENT)
        # Trailing U+FFFD that the full text does not have there: bytes still to come.
        pending = whole != p and text[len(whole) : len(p)] != p[len(whole) :]
        b = min(max(len(whole) if pending else len(p), prev), len(text))
        spans.append((prev, b, pending))
        prev = b
    return text, spans


# ---- times ----------------------------------------------------------------------------
def word_timestamps(
    tokenizer,
    token_ids: Sequence[int],
    log_probs: torch.Tensor,
    token_labels: torch.Tensor,
    frame_seconds: float,
    offset: float = 0.0,
    end: float | None = None,
    samples: np.ndarray | None = None,
    sample_rate: int = 16000,
) -> list[Word]:
    """The words of the transcript `token_ids` (LLM token ids, no stop token), placed in
    the audio as the module docstring says.

    log_probs (T, C + 1): the CTC branch's log posteriors of the window's T frames, blank
    last; token_labels (V, K): each token id's CTC labels, -1 padded (CTCHead.token_labels;
    ids >= V have none); frame_seconds: audio per frame; offset: the window's start in the
    recording, seconds; end: the window's end (default: offset + T x frame_seconds), which
    no word passes; samples (S,): the window's audio at `sample_rate`, to refine the times
    by its speech stretches (module docstring; None: the CTC frames alone).
    """
    text, spans = token_spans(tokenizer, token_ids)
    word_spans = split_words(text)
    if not word_spans:
        return []
    t_max = log_probs.shape[0]
    limit = offset + t_max * frame_seconds if end is None else end
    word_of = [-1] * len(text)  # character -> its word
    for w, (a, b) in enumerate(word_spans):
        word_of[a:b] = [w] * (b - a)

    # Each token's labels, then all of them aligned at once.
    ids = torch.as_tensor(list(token_ids), dtype=torch.long)
    inside = ids < token_labels.shape[0]
    rows = torch.full((len(ids), token_labels.shape[1]), -1, dtype=torch.long)
    rows[inside] = token_labels[ids[inside].to(token_labels.device)].cpu()
    own_labels = [r[r >= 0] for r in rows]
    labels = torch.cat(own_labels) if own_labels else torch.zeros(0, dtype=torch.long)
    got = align(log_probs, labels)
    first, last = got.first.tolist(), got.last.tolist()
    log_sum = (got.score.double() * got.frames).tolist()  # summed log posterior per label

    # What each word's characters got: frame ranges and the labels behind them.
    starts: list[list[float]] = [[] for _ in word_spans]
    ends: list[list[float]] = [[] for _ in word_spans]
    behind: list[set[int]] = [set() for _ in word_spans]
    own_texts = tokenizer.batch_decode([[i] for i in ids.tolist()])
    g = 0  # the token's first label among all
    for k, (a, b, pending) in enumerate(spans):
        n = len(own_labels[k])
        if n == 0:
            continue
        mine = range(g, g + n)
        g += n
        if n == b - a and own_texts[k] == text[a:b]:
            # One label per character (a spelling branch): each character its own frames.
            for j, lab in enumerate(mine):
                w = word_of[a + j]
                if w >= 0:
                    starts[w].append(first[lab])
                    ends[w].append(last[lab] + 1)
                    behind[w].add(lab)
            continue
        chars = [i for i in range(a, b) if word_of[i] >= 0]
        if not chars and (pending or a == b) and b < len(text) and word_of[b] >= 0:
            chars = [b]  # a piece of the character the next token completes
        lo, hi = first[mine[0]], last[mine[-1]] + 1
        for m, i in enumerate(chars):  # the token's frames shared among its characters
            w = word_of[i]
            starts[w].append(lo + (hi - lo) * m / len(chars))
            ends[w].append(lo + (hi - lo) * (m + 1) / len(chars))
            behind[w].update(mine)

    frames: list[tuple[float, float] | None] = [
        (min(s), max(e)) if s else None for s, e in zip(starts, ends)
    ]
    runs = None
    if samples is not None:  # in frames, like everything up to the seconds below
        runs = [
            (a / frame_seconds, b / frame_seconds) for a, b in speech_runs(samples, sample_rate)
        ]
        tails = [max((first[lab] for lab in b), default=0.0) for b in behind]  # last labels
        _refine(
            frames, tails, runs, (limit - offset) / frame_seconds, MAX_TAIL_SECONDS / frame_seconds
        )
    _place_unaligned(frames, log_probs, runs)
    words = []
    for w, ((a, b), (f0, f1)) in enumerate(zip(word_spans, frames)):
        if behind[w]:
            total = sum(log_sum[lab] for lab in behind[w])
            count = sum(last[lab] - first[lab] + 1 for lab in behind[w])
            confidence = min(1.0, math.exp(total / count))
        else:
            confidence = 0.0
        start = min(max(offset + f0 * frame_seconds, offset), limit)
        stop = min(max(offset + f1 * frame_seconds, start), limit)
        words.append(Word(text[a:b], start, stop, confidence))
    for w, nxt in zip(words, words[1:]):  # no overlaps (labels sharing frames when spread)
        nxt.start = max(nxt.start, w.start)
        w.end = max(w.start, min(w.end, nxt.start))
    return words


def speech_runs(
    samples: np.ndarray, sample_rate: int = 16000, step: float = 0.01, bridge: float = 0.1
) -> list[tuple[float, float]]:
    """The stretches of (S,) `samples` loud enough to be speech, [start, end) in seconds:
    `step`-long pieces whose level (RMS, dB) is within 35 dB of the loud pieces' (the 95th
    percentile) and 30 % of the way up from the quiet ones' (the 5th) to it; gaps shorter
    than `bridge` (a stop consonant's closure) bridged."""
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    hop = max(1, round(sample_rate * step))
    n = len(x) // hop
    if n == 0:
        return []
    level = 10 * np.log10((x[: n * hop].reshape(n, hop) ** 2).mean(1) + 1e-20)
    quiet, loud = np.percentile(level, [5, 95])
    on = level > max(loud - 35.0, quiet + 0.3 * (loud - quiet))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    runs: list[list[float]] = []
    for a, b in zip(edges[::2], edges[1::2]):
        if runs and a * step - runs[-1][1] < bridge:
            runs[-1][1] = b * step
        else:
            runs.append([a * step, b * step])
    return [(float(a), float(b)) for a, b in runs]


def _refine(
    frames: list[tuple[float, float] | None],
    tails: list[float],
    runs: list[tuple[float, float]],
    limit: float,
    max_tail: float,
) -> None:
    """Aligned words' (start, end) moved to the speech stretches `runs` (module docstring);
    everything in frames: `tails`, each word's last label's first frame; `limit`, the
    window's end; `max_tail`, how far past its tail a word may be carried."""
    aligned = [i for i, f in enumerate(frames) if f is not None]
    starts: dict[int, float] = {}
    floor = 0.0  # the word before's last label's end: no onset before it
    for i in aligned:
        s, e = frames[i]
        run = next((r for r in runs if r[1] > s and r[0] < s + 1), None)
        starts[i] = run[0] if run and run[0] >= max(s - ONSET_FRAMES, floor) else s
        floor = e
    for k, i in enumerate(aligned):
        s, e = frames[i]
        nxt = starts[aligned[k + 1]] if k + 1 < len(aligned) else limit
        run = next((r for r in runs if r[1] > tails[i]), None)
        if run and run[0] <= tails[i] + 1:  # the stretch holding the last label
            e = max(e, run[1])
        frames[i] = (starts[i], max(starts[i], min(e, nxt, tails[i] + max_tail, limit)))


def _place_unaligned(
    frames: list[tuple[float, float] | None],
    log_probs: torch.Tensor,
    runs: list[tuple[float, float]] | None = None,
) -> None:
    """Give each run of unaligned words (None) frames between its aligned neighbours: the
    part of the gap that holds speech (the speech stretches `runs`, in frames, if given;
    else the frames the CTC branch's argmax is not blank), else all of the gap between two
    neighbours, else a point at the one neighbour; shared evenly among the run's words."""
    t_max, blank = log_probs.shape[0], log_probs.shape[1] - 1
    if runs is None:
        frames_heard = (log_probs.argmax(-1) != blank).nonzero().flatten().tolist()
        runs = [(float(t), float(t + 1)) for t in frames_heard]
    i = 0
    while i < len(frames):
        if frames[i] is not None:
            i += 1
            continue
        j = i
        while j < len(frames) and frames[j] is None:
            j += 1
        lo = frames[i - 1][1] if i > 0 else 0.0
        hi = frames[j][0] if j < len(frames) else float(t_max)
        heard = [(max(a, lo), min(b, hi)) for a, b in runs if b > lo and a < hi]
        if heard:
            lo, hi = heard[0][0], heard[-1][1]
        elif i == 0 and j < len(frames):
            lo = hi  # before the first aligned word: at its start
        elif j == len(frames) and i > 0:
            hi = lo  # after the last: at its end
        for r in range(i, j):
            frames[r] = (lo + (hi - lo) * (r - i) / (j - i), lo + (hi - lo) * (r - i + 1) / (j - i))
        i = j
