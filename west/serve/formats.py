"""A transcript in OpenAI's `response_format`s: json, text, verbose_json, srt, vtt.

verbose_json's segments are the windows the recording was cut into at pauses (one for
audio up to 28 s), with OpenAI's segment keys; WeST does not compute the per-segment
`avg_logprob`, `compression_ratio` and `no_speech_prob`, so those keys are left out
rather than filled with made-up numbers, and `tokens` is empty.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from west.transcriber import Segment

FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


def render(
    response_format: str,
    text: str,
    segments: Sequence[Segment],
    duration: float,
    language: str | None = None,
) -> tuple[str, str]:
    """(body, media type) of one transcript in `response_format` (one of FORMATS)."""
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
        return json.dumps(body, ensure_ascii=False), "application/json"
    if response_format == "srt":
        cues = [
            f"{i}\n{timestamp(s.start, ',')} --> {timestamp(s.end, ',')}\n{s.text}\n"
            for i, s in enumerate(spoken, 1)
        ]
        return "\n".join(cues), "text/plain; charset=utf-8"
    if response_format == "vtt":
        cues = [f"{timestamp(s.start)} --> {timestamp(s.end)}\n{s.text}\n" for s in spoken]
        return "\n".join(["WEBVTT\n", *cues]), "text/vtt; charset=utf-8"
    raise ValueError(f"response_format {response_format!r}: expected one of {FORMATS}")


def timestamp(seconds: float, decimal: str = ".") -> str:
    """HH:MM:SS.mmm (vtt) or HH:MM:SS,mmm (srt)."""
    ms = round(seconds * 1000)
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{decimal}{ms:03d}"
