"""Transcriber.stream_windows: windows cut from a recording's chunks as they arrive.

Real speech (espeak-ng sentences with pauses of several lengths, a stretch of digital
silence and one of faint noise), over 90 s: whatever the chunk sizes, the windows are those
Transcriber.windows gives the whole recording, for both segmentations, bit for bit. A
20-minute recording fed in 30 s chunks is cut holding about a window and a chunk of audio.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import synthesize
from espeak import SENTENCES

import west
from west.data.audio import SAMPLE_RATE as SR
from west.transcriber import LOOKAHEAD_SECONDS, Transcriber

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def transcribers(random_model_dir):
    pauses = west.load(random_model_dir, device="cpu", max_new_tokens=6)
    return {"pauses": pauses, "vad": Transcriber(pauses.model, segmentation="vad")}


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> np.ndarray:
    """~2 minutes at 16 kHz: 16 sentences, pauses of 0.2 to 2 s, 60 s of zeros, 10 s of
    faint noise, on a faint noise floor except in the zeros."""
    tmp = tmp_path_factory.mktemp("stream_windows")
    rng = np.random.default_rng(0)
    pieces = []
    for i, text in enumerate(SENTENCES[:16]):
        x, sr = sf.read(synthesize(text, tmp / f"s{i}.wav", speed=150 + 5 * i), dtype="float32")
        x = soxr.resample(x, sr, SR).astype(np.float32)
        gap = np.zeros(int(rng.uniform(0.2, 2.0) * SR), np.float32)
        pieces += [x, gap]
        if i == 7:
            pieces.append(np.full(60 * SR, np.nan, np.float32))  # zeros, after the floor
        if i == 11:
            pieces.append(np.zeros(10 * SR, np.float32))
    audio = np.concatenate(pieces)
    audio += rng.normal(0, 3e-4, len(audio)).astype(np.float32)
    audio[np.isnan(audio)] = 0.0
    assert len(audio) > 90 * SR
    return audio


def in_chunks(audio: np.ndarray, seconds: float) -> list[np.ndarray]:
    n = int(seconds * SR)
    return [audio[i : i + n] for i in range(0, len(audio), n)]


def same_windows(a, b) -> None:
    assert [(w.segment, w.silent) for w in a] == [(w.segment, w.silent) for w in b]
    for x, y in zip(a, b):
        assert x.samples.dtype == y.samples.dtype == np.float32
        assert np.array_equal(x.samples, y.samples)


@pytest.mark.parametrize("segmentation", ["pauses", "vad"])
def test_stream_windows_are_the_windows_of_the_whole(transcribers, recording, segmentation):
    t = transcribers[segmentation]
    whole = t.windows(recording)
    assert sum(not w.silent for w in whole) >= 3  # the speech is there, cut
    if segmentation == "pauses":  # windows cover everything, the zeros make silent ones
        assert len(whole) >= 5 and any(w.silent for w in whole)
        assert whole[0].segment.start == 0 and whole[-1].segment.end == len(recording) / SR
        assert all(a.segment.end == b.segment.start for a, b in zip(whole, whole[1:]))
    for w in whole:
        assert len(w.samples) == round((w.segment.end - w.segment.start) * SR)
        assert w.samples.base is None  # its own array, not a view of the recording
    rng = np.random.default_rng(1)
    ragged = np.split(recording, np.sort(rng.choice(len(recording), 30, replace=False)))
    for chunks in [*(in_chunks(recording, s) for s in (0.5, 7, 30, 100)), ragged]:
        streamed = list(t.stream_windows(iter(chunks)))
        same_windows(streamed, whole)
        assert all(w.samples.base is None for w in streamed)


def test_cut_needs_no_more_than_the_lookahead(transcribers, recording):
    """A window's end depends on nothing past `max_window_seconds` + LOOKAHEAD_SECONDS from
    its start: the first window of the recording is the first of any longer prefix."""
    t = transcribers["pauses"]
    need = int((t.max_window_seconds + LOOKAHEAD_SECONDS) * SR)
    first = t.windows(recording)[0]
    for extra in (0, 1, SR, 40 * SR):
        same_windows([t.windows(recording[: need + extra])[0]], [first])


def long_chunks(audio: np.ndarray, seconds: float, chunk_seconds: float):
    """`seconds` of `audio` (a recording twice over, longer than a chunk) repeated, in
    chunks, made one at a time: the long recording is never whole."""
    n, step, period = int(seconds * SR), int(chunk_seconds * SR), len(audio) // 2
    for a in range(0, n, step):
        b = a % period
        yield audio[b : b + min(step, n - a)].copy()


@pytest.mark.parametrize("segmentation", ["pauses", "vad"])
def test_twenty_minutes_in_30_s_chunks_hold_a_window_and_a_chunk(
    transcribers, recording, segmentation
):
    t = transcribers[segmentation]
    minutes, chunk = 20, 30.0
    twice = np.tile(recording, 2)
    tracemalloc.start()
    try:
        spans, total = [], 0
        for w in t.stream_windows(long_chunks(twice, minutes * 60, chunk)):
            assert w.samples.base is None
            spans.append((w.segment.start, w.segment.end, w.silent))
            total += len(w.samples)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The audio held: a window, its lookahead and a chunk (float32), besides the working
    # copies (split_points' energies in float64) of one window; never the recording.
    held = (t.max_window_seconds + LOOKAHEAD_SECONDS + chunk) * SR * 4
    whole = minutes * 60 * SR * 4
    assert peak < 8 * held < whole / 2, (peak, held, whole)
    assert minutes * 60 - 30 < spans[-1][1] <= minutes * 60
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    if segmentation == "pauses":
        assert total == minutes * 60 * SR and len(spans) >= minutes * 60 / 28
