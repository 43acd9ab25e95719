"""espeak-ng, the one place that runs it: a sentence read aloud, as samples or as a wav file.

The mini corpus (prepare_corpus.py), the tests' speech fixtures and the benchmarks all
synthesise their speech here. espeak-ng writes 22.05 kHz mono 16-bit audio (its MBROLA
voices 16 kHz); nothing here resamples it.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

ESPEAK = "espeak-ng"

# English sentences the tests and benchmarks synthesise (the tests take the first six).
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "speech recognition with a large language model",
    "she sells sea shells by the sea shore",
    "a stitch in time saves nine",
    "all that glitters is not gold",
    "the early bird catches the worm",
    "we measured every step on the same machine",
    "a cold wind blew across the empty harbour",
    "please call stella and ask her to bring these things with her from the store",
    "the museum opens at nine and closes at five on weekdays",
    "it rained all night and the river rose above its banks",
    "he read the letter twice before he put it back in the drawer",
    "six spoons of fresh snow peas and five thick slabs of blue cheese",
    "the children ran down the hill toward the old stone bridge",
    "our train leaves at a quarter past eight from platform two",
    "she plays the violin in a small orchestra every sunday",
]


def have_espeak() -> bool:
    return shutil.which(ESPEAK) is not None


def speak(
    text: str, voice: str | None = None, speed: int | None = None, pitch: int | None = None
) -> tuple[np.ndarray, int]:
    """`text` read by espeak-ng -> (int16 samples (T,), sample rate).

    `voice` (`-v`), `speed` in words per minute (`-s`) and `pitch` 0-99 (`-p`) default to
    espeak-ng's own. The text goes in on stdin, so one starting with '-' is not an option.
    Raises RuntimeError naming the command if espeak-ng fails or writes no audio.
    """
    cmd = [ESPEAK]
    if voice and re.fullmatch(r"mb-[a-z0-9-]+", voice):
        # An MBROLA voice by its file (voices/mb/mb-us1), which espeak-ng loads directly; by
        # name it first reads all of its ~300 voice files to find it (5 ms of 25). The same
        # file, the same voice: the same samples (tests/recipes/test_mini_corpus.py).
        voice = f"mb/{voice}"
    for flag, value in (("-v", voice), ("-s", speed), ("-p", pitch)):
        if value is not None:
            cmd += [flag, str(value)]
    cmd.append("--stdout")
    proc = subprocess.run(cmd, input=text.encode(), capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) <= 44:  # 44 bytes: a wav header alone
        err = proc.stderr.decode(errors="replace").strip() or "no audio"
        raise RuntimeError(f"{' '.join(cmd)} < {text!r} failed ({proc.returncode}): {err}")
    audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="int16")
    return audio, rate


def write_speech(
    text: str, path: str | os.PathLike, voice: str | None = None, speed: int | None = None
) -> Path:
    """`text` read by espeak-ng, written to `path` as a 16-bit wav at espeak-ng's own rate."""
    audio, rate = speak(text, voice, speed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, rate, subtype="PCM_16", format="WAV")
    return path
