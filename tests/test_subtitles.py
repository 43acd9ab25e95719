"""Subtitle cues and the txt / tsv / srt / vtt / json writers (west.subtitles), on words
with hand-made times."""

from __future__ import annotations

import json

import pytest

from west.subtitles import CueLimits, cues, timestamp, write
from west.timestamps import Word
from west.transcriber import Segment


def _timed(text: str, start: float = 0.0, length: float = 0.3, gap: float = 0.05) -> list[Word]:
    """`text`'s words, each `length` s long, `gap` s apart, from `start`."""
    out = []
    for w in text.split():
        out.append(Word(w, round(start, 6), round(start + length, 6), 0.9))
        start += length + gap
    return out


def _segment(words: list[Word], start: float = 0.0, end: float | None = None) -> Segment:
    end = words[-1].end + 0.5 if end is None else end
    return Segment(start, end, " ".join(w.word for w in words), words)


def _check_limits(found, limits: CueLimits = CueLimits()) -> None:
    for c in found:
        assert 1 <= len(c.lines) <= limits.max_lines
        assert all(len(line) <= limits.max_chars for line in c.lines)
        assert c.words[-1].end - c.words[0].start <= limits.max_seconds
        assert c.start == c.words[0].start and c.end >= c.words[-1].end
    for a, b in zip(found, found[1:]):
        assert a.end <= b.start


def test_timestamps():
    assert timestamp(0.0) == "00:00:00.000"
    assert timestamp(3725.2506, ",") == "01:02:05,251"
    assert timestamp(59.9996) == "00:01:00.000"  # rounding carries into the minutes


def test_cues_end_at_pauses_and_sentence_ends():
    first = _timed("Hello there, my good friend.")
    second = _timed("How are you today", start=first[-1].end + 0.1)
    third = _timed("after a long pause", start=second[-1].end + 0.8)  # >= 0.5 s
    words = first + second + third
    found = cues([_segment(words)], duration=20.0)
    assert [c.text for c in found] == [
        "Hello there, my good friend.",
        "How are you today",
        "after a long pause",
    ]
    _check_limits(found)


def test_a_long_stretch_is_cut_into_few_even_cues_preferring_a_comma():
    text = (
        "this is a rather long stretch of speech without any pause in it and it goes on "
        "and on for much longer than one subtitle could ever hold on the screen"
    )
    found = cues([_segment(_timed(text, length=0.25, gap=0.02))])
    _check_limits(found)
    assert " ".join(" ".join(c.lines) for c in found) == text
    sizes = [len(" ".join(c.lines)) for c in found]
    assert len(found) == 2 and max(sizes) - min(sizes) < 15  # not one full cue and a scrap
    # A comma off the middle: the cut goes there rather than between two plain words.
    text = (
        "a stretch of speech, without any pause and it is going on for much longer than one "
        "cue can hold"
    )
    found = cues([_segment(_timed(text, length=0.25, gap=0.02))])
    assert [" ".join(c.lines) for c in found] == [
        "a stretch of speech,",
        "without any pause and it is going on for much longer than one cue can hold",
    ]


def test_seven_seconds_at_most_even_when_the_text_would_fit():
    words = _timed("slow words one by one and again", length=1.1, gap=0.2)  # 9 s, 31 chars
    found = cues([_segment(words)])
    assert len(found) == 2
    _check_limits(found)


def test_a_cue_too_short_to_read_joins_its_neighbour_or_stays_up_longer():
    yes = _timed("Yes.", length=0.25)
    rest = _timed("I think so too", start=0.3, length=0.2)
    found = cues([_segment(yes + rest)])
    assert [c.text for c in found] == ["Yes. I think so too"]
    # Alone (a pause after it): held until it can be read (1 s), not into the next cue.
    later = _timed("Much later now", start=0.85, length=0.2)
    found = cues([_segment(yes + later)], duration=10.0)
    assert [c.text for c in found] == ["Yes.", "Much later now"]
    assert found[0].end == pytest.approx(0.85) and found[1].end == pytest.approx(0.85 + 1.0)
    # Never past the recording.
    assert cues([_segment(yes)], duration=0.6)[0].end == pytest.approx(0.6)


def test_lines_are_even_and_cjk_has_no_spaces():
    words = _timed("we measured every step on the same machine and wrote it down")
    (cue,) = cues([_segment(words)])
    assert len(cue.lines) == 2 and abs(len(cue.lines[0]) - len(cue.lines[1])) <= 8
    chinese = [Word(c, i * 0.2, i * 0.2 + 0.2, 0.9) for i, c in enumerate("你好，世界。")]
    chinese = [chinese[0], Word("好，", 0.2, 0.6, 0.9), chinese[3], Word("界。", 0.8, 1.2, 0.9)]
    (cue,) = cues([Segment(0.0, 2.0, "你好，世界。", chinese)])
    assert cue.lines == ["你好，世界。"]


def test_without_words_the_cues_are_the_spoken_segments():
    segments = [
        Segment(0.0, 27.5, "first window"),
        Segment(27.5, 40.0, ""),
        Segment(40.0, 45.0, "b"),
    ]
    found = cues(segments, 45.0)
    assert [(c.start, c.end, c.text, c.words) for c in found] == [
        (0.0, 27.5, "first window", None),
        (40.0, 45.0, "b", None),
    ]


def test_every_format():
    a = _timed("Hello world.", start=1.0)
    b = _timed("Second line", start=3.0)
    segments = [_segment(a, 0.0, 2.5), Segment(2.5, 2.9, ""), _segment(b, 2.9, 4.0)]
    text = "Hello world. Second line"
    assert write("txt", text, segments, 4.0) == "Hello world.\nSecond line\n"
    assert write("srt", text, segments, 4.0) == (
        "1\n00:00:01,000 --> 00:00:02,000\nHello world.\n\n"
        "2\n00:00:03,000 --> 00:00:04,000\nSecond line\n"
    )
    assert write("vtt", text, segments, 4.0) == (
        "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nHello world.\n\n"
        "00:00:03.000 --> 00:00:04.000\nSecond line\n"
    )
    assert write("tsv", text, segments, 4.0) == (
        "start\tend\ttext\n1000\t2000\tHello world.\n3000\t4000\tSecond line\n"
    )
    body = json.loads(write("json", text, segments, 4.0))
    assert body["text"] == text and body["duration"] == 4.0
    assert [(s["start"], s["end"], s["text"]) for s in body["segments"]] == [
        (0.0, 2.5, "Hello world."),
        (2.9, 4.0, "Second line"),
    ]
    assert body["segments"][0]["words"] == [
        {"word": "Hello", "start": 1.0, "end": 1.3, "confidence": 0.9},
        {"word": "world.", "start": 1.35, "end": 1.65, "confidence": 0.9},
    ]
    untimed = [Segment(0.0, 1.0, "a\tb")]  # no words: the segment is the cue, tabs out of tsv
    assert write("tsv", "a\tb", untimed, 1.0) == "start\tend\ttext\n0\t1000\ta b\n"
    untimed = json.loads(write("json", "x", [Segment(0.0, 1.0, "x")], 1.0))
    assert "words" not in untimed["segments"][0]
    with pytest.raises(ValueError, match="expected one of txt, tsv, srt, vtt, json"):
        write("docx", text, segments, 4.0)
