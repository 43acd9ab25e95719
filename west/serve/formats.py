"""A transcript in OpenAI's `response_format`s: json, text, verbose_json, srt, vtt.

verbose_json's segments are the windows the recording was cut into at pauses (one for
audio up to 28 s), with OpenAI's segment keys; WeST does not compute the per-segment
`avg_logprob`, `compression_ratio` and `no_speech_prob`, so those keys are left out
rather than filled with made-up numbers, and `tokens` is empty. With word timestamps
asked for (`timestamp_granularities[]=word`; a model with a CTC branch), verbose_json also
has OpenAI's top-level `words`: word, start, end, and WeST's `confidence` (0-1).

srt and vtt cues are the words cut into readable subtitles when the segments are timed
word by word, else the segments (west.subtitles.cues).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from west.subtitles import cues, srt, timestamp, vtt, word_record
from west.transcriber import Segment

FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
__all__ = ["FORMATS", "render", "timestamp"]


def render(
    response_format: str,
    text: str,
    segments: Sequence[Segment],
    duration: float,
    language: str | None = None,
    words: bool = False,
) -> tuple[str, str]:
    """(body, media type) of one transcript in `response_format` (one of FORMATS);
    `words`: verbose_json lists the words (ValueError if a spoken segment has none)."""
    spoken = [s for s in segments if s.text]  # silent windows say nothing
    if response_format == "json":
        return json.dumps({"text": text}, ensure_ascii=False), "application/json"
    if response_format == "text":
        return text + "\n", "text/plain; charset=utf-8"
    if response_format == "verbose_json":
        body = {
            "task": "transcribe",
            "language": language or "unknown",
            "duration": round(duration, 3),
            "text": text,
            "segments": [
                {
                    "id": i,
                    "seek": round(s.start * 100),  # in 10 ms frames, as Whisper counts
                    "start": round(s.start, 3),
                    "end": round(s.end, 3),
                    "text": s.text,
                    "tokens": [],
                    "temperature": 0.0,
                }
                for i, s in enumerate(spoken)
            ],
        }
        if words:
            if any(s.words is None for s in spoken):
                raise ValueError("word timestamps asked for, but the segments have no words")
            body["words"] = [word_record(w) for s in spoken for w in s.words]
        return json.dumps(body, ensure_ascii=False), "application/json"
    if response_format == "srt":
        return srt(cues(segments, duration)), "text/plain; charset=utf-8"
    if response_format == "vtt":
        return vtt(cues(segments, duration)), "text/vtt; charset=utf-8"
    raise ValueError(f"response_format {response_format!r}: expected one of {FORMATS}")
