"""Transcripts with times as files: words cut into readable subtitle cues, written as txt,
tsv, srt, vtt or json.

Cues (`cues`): with word timestamps (Segment.words, west.timestamps), the words are cut
into cues of at most `max_lines` lines of `max_chars` characters (42 and 2, the common
broadcast limits) and at most `max_seconds` (7 s) each, always between words:
- a cue always ends at a pause of `pause` seconds (0.5) or more, at the end of a sentence
  (. ! ? and their CJK forms) and at the end of a window;
- a longer stretch is cut where it costs least: after a comma, semicolon or colon, or at
  a shorter pause, into as few cues as fit, of even lengths;
- a cue shown for less time than it takes to read (`chars_per_second`, 17, and at least
  `min_seconds`, 1 s) is joined to the next or the one before where they fit together
  and nothing is paused between them, and is then held on screen until it can be read,
  but never into the next cue nor past the recording.
Without words (a model without a CTC branch) the cues are the spoken segments, i.e. the
windows the recording was cut into, one cue each, as they are.

Formats (`write`): txt (each spoken segment's text on a line), tsv (a `start end text`
header, then one line per cue with times in integer milliseconds, as Whisper's tsv
writer), srt (HH:MM:SS,mmm), vtt (HH:MM:SS.mmm), json (text, duration, and the spoken
segments with start, end, text and, when timed, their words with word, start, end and
confidence; times in seconds, to the millisecond).
"""

from __future__ import annotations

import dataclasses
import json
import math
import unicodedata
from collections.abc import Sequence

from west.timestamps import Word, join_words
from west.transcriber import Segment

FORMATS = ("txt", "tsv", "srt", "vtt", "json")
SENTENCE_END = frozenset(".!?…。！？")
CLAUSE_END = frozenset(",;:—–，；：、")


@dataclasses.dataclass
class Cue:
    """One subtitle: shown from `start` to `end` (seconds), its `lines`; `words`, the timed
    words it shows (None for a cue that is a whole segment)."""

    start: float
    end: float
    lines: list[str]
    words: list[Word] | None = None

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclasses.dataclass
class CueLimits:
    """How big a cue may be and how long it must stay (see the module docstring)."""

    max_chars: int = 42
    max_lines: int = 2
    max_seconds: float = 7.0
    pause: float = 0.5
    chars_per_second: float = 17.0
    min_seconds: float = 1.0

    def reading_seconds(self, text: str) -> float:
        return max(self.min_seconds, len(text) / self.chars_per_second)


def has_words(segments: Sequence[Segment]) -> bool:
    """Whether every spoken segment is timed word by word."""
    spoken = [s for s in segments if s.text]
    return bool(spoken) and all(s.words is not None for s in spoken)


def cues(
    segments: Sequence[Segment], duration: float | None = None, limits: CueLimits | None = None
) -> list[Cue]:
    """The subtitle cues of a recording's segments (module docstring); `duration`, the
    recording's length in seconds, bounds how long the last cue stays."""
    limits = limits or CueLimits()
    spoken = [s for s in segments if s.text]
    if not has_words(spoken):
        return [Cue(s.start, s.end, [s.text]) for s in spoken]
    groups: list[list[Word]] = []
    for s in spoken:
        for phrase in _phrases(s.words, limits.pause):
            groups += _cut(phrase, limits)
    groups = _join_short(groups, limits)
    out = [Cue(g[0].start, max(g[-1].end, g[0].start), _wrap(g, limits), g) for g in groups]
    for i, cue in enumerate(out):
        until = out[i + 1].start if i + 1 < len(out) else math.inf
        if duration is not None:
            until = min(until, duration)
        wanted = cue.start + limits.reading_seconds(_text(cue.words))
        cue.end = max(cue.end, min(wanted, until))
    return out


def _text(words: Sequence[Word]) -> str:
    return join_words([w.word for w in words])


def _ends_sentence(word: str) -> bool:
    core = word.rstrip("\"'”’»」』)]）")
    return bool(core) and core[-1] in SENTENCE_END


def _phrases(words: Sequence[Word], pause: float) -> list[list[Word]]:
    """Words split where a cue must end: a pause of `pause` s or more, a sentence's end."""
    out: list[list[Word]] = []
    for w in words:
        if out and (_ends_sentence(out[-1][-1].word) or w.start - out[-1][-1].end >= pause):
            out.append([w])
        elif out:
            out[-1].append(w)
        else:
            out.append([w])
    return out


def _wrap(words: Sequence[Word], limits: CueLimits) -> list[str] | None:
    """The words as at most max_lines lines of at most max_chars, as even as they go
    (the narrowest width that fits); None if they do not fit. A single word always fits."""
    text = _text(words)
    if len(text) <= limits.max_chars or len(words) == 1:
        return [text]
    for width in range(math.ceil(len(text) / limits.max_lines), limits.max_chars + 1):
        lines: list[list[str]] = [[]]
        for w in words:
            if lines[-1] and len(join_words([*lines[-1], w.word])) > width:
                lines.append([])
            lines[-1].append(w.word)
        if len(lines) <= limits.max_lines and all(len(join_words(x)) <= width for x in lines):
            return [join_words(x) for x in lines]
    return None


def _fits(words: Sequence[Word], limits: CueLimits) -> bool:
    if len(words) == 1:
        return True
    return words[-1].end - words[0].start <= limits.max_seconds and _wrap(words, limits) is not None


def _break_cost(words: Sequence[Word], k: int, pause: float) -> float:
    """What a cue break after words[k] costs: 1 between plain words, less after a clause
    mark or at a pause (the longer the pause, the less)."""
    mark = words[k].word[-1] if words[k].word else ""
    gap = words[k + 1].start - words[k].end
    cost = 1.0 - 0.8 * min(max(gap, 0.0) / pause, 1.0)
    return min(cost, 0.2) if mark in CLAUSE_END or unicodedata.category(mark) == "Pd" else cost


def _cut(words: list[Word], limits: CueLimits) -> list[list[Word]]:
    """A phrase cut into cues that fit, by dynamic programming: each cue costs 1 (few cues),
    plus its break (`_break_cost`), plus (1 - how full it is)^2 / 2 (even cues)."""
    n = len(words)
    capacity = limits.max_chars * limits.max_lines
    best = [0.0] + [math.inf] * n
    start = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            cue = words[i:j]
            if not _fits(cue, limits):
                break  # fewer words fit no better
            fill = min(len(_text(cue)) / capacity, 1.0)
            cost = best[i] + 1.0 + 0.5 * (1.0 - fill) ** 2
            if j < n:
                cost += _break_cost(words, j - 1, limits.pause)
            if cost < best[j]:
                best[j], start[j] = cost, i
    out, j = [], n
    while j > 0:
        out.append(words[start[j] : j])
        j = start[j]
    return out[::-1]


def _join_short(groups: list[list[Word]], limits: CueLimits) -> list[list[Word]]:
    """Join a cue too short to read to its neighbour (module docstring)."""

    def short(g: list[Word]) -> bool:
        return g[-1].end - g[0].start < limits.reading_seconds(_text(g))

    out: list[list[Word]] = []
    for g in groups:
        prev = out[-1] if out else None
        if (
            prev is not None
            and (short(prev) or short(g))
            and g[0].start - prev[-1].end < limits.pause
            and _fits(prev + g, limits)
        ):
            out[-1] = prev + g
        else:
            out.append(g)
    return out


# ---- writers ------------------------------------------------------------------------
def timestamp(seconds: float, decimal: str = ".") -> str:
    """HH:MM:SS.mmm (vtt) or HH:MM:SS,mmm (srt)."""
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"


def srt(cues: Sequence[Cue]) -> str:
    return "\n".join(
        f"{i}\n{timestamp(c.start, ',')} --> {timestamp(c.end, ',')}\n{c.text}\n"
        for i, c in enumerate(cues, 1)
    )


def vtt(cues: Sequence[Cue]) -> str:
    body = [f"{timestamp(c.start)} --> {timestamp(c.end)}\n{c.text}\n" for c in cues]
    return "\n".join(["WEBVTT\n", *body])


def tsv(cues: Sequence[Cue]) -> str:
    rows = [
        f"{round(c.start * 1000)}\t{round(c.end * 1000)}\t"
        + " ".join(c.lines).replace("\t", " ")
        + "\n"
        for c in cues
    ]
    return "".join(["start\tend\ttext\n", *rows])


def txt(segments: Sequence[Segment]) -> str:
    return "".join(f"{s.text}\n" for s in segments if s.text)


def word_record(w: Word) -> dict:
    """One word as the json format and verbose_json's `words` give it: word, start, end,
    confidence, to the millisecond (and thousandth)."""
    return {
        "word": w.word,
        "start": round(w.start, 3),
        "end": round(w.end, 3),
        "confidence": round(w.confidence, 3),
    }


def record(text: str, segments: Sequence[Segment], duration: float) -> dict:
    """The json format's object (module docstring)."""
    out = []
    for s in segments:
        if not s.text:
            continue
        item = {"start": round(s.start, 3), "end": round(s.end, 3), "text": s.text}
        if s.words is not None:
            item["words"] = [word_record(w) for w in s.words]
        out.append(item)
    return {"text": text, "duration": round(duration, 3), "segments": out}


def write(
    fmt: str,
    text: str,
    segments: Sequence[Segment],
    duration: float,
    limits: CueLimits | None = None,
) -> str:
    """One recording's transcript (its text, Segments and length in seconds) as a file's
    text in `fmt`, one of FORMATS."""
    if fmt == "txt":
        return txt(segments)
    if fmt == "json":
        return json.dumps(record(text, segments, duration), ensure_ascii=False) + "\n"
    writers = {"tsv": tsv, "srt": srt, "vtt": vtt}
    if fmt not in writers:
        raise ValueError(f"format {fmt!r}: expected one of {', '.join(FORMATS)}")
    return writers[fmt](cues(segments, duration, limits))
