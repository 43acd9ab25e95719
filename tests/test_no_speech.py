"""No speech, no text: Transcriber(speech_only=True) hands the LLM no window without speech.

Real Silero VAD on real audio: white noise at several levels, digital silence and a faint
noise floor, music (chords of sine tones in a rhythm) give only silent windows, so the tiny
random model is never asked for a text (it would answer with garbage, as a real LLM answers
noise with invented words); espeak-ng speech inside noise keeps its windows. speech_only=False
decodes the noise as before, and so does speech_only without Silero (the energy fallback).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf
import soxr
from conftest import SENTENCES, synthesize

import west
import west.transcriber as transcriber_module
from west.data.audio import SAMPLE_RATE as SR
from west.data.audio import AudioError
from west.data.vad import EnergyDetector
from west.transcriber import Transcriber

pytestmark = pytest.mark.usefixtures("one_thread")
SECONDS = 60  # long enough for several windows


class Counting(Transcriber):
    """A Transcriber that counts the windows it decodes."""

    decoded = 0

    def decode_windows(self, samples, *args, **kwargs):
        self.decoded += len(samples)
        return super().decode_windows(samples, *args, **kwargs)


@pytest.fixture(scope="module")
def model(random_model_dir):
    return west.load(random_model_dir, device="cpu", max_new_tokens=6).model


def noise(level: float, seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(0, level, int(seconds * SR))
    return np.clip(x, -1, 1).astype(np.float32)


def music(seconds: float = SECONDS, seed: int = 0) -> np.ndarray:
    """Chords of four sine tones, a new one every half second, each struck and decaying."""
    rng = np.random.default_rng(seed)
    beat = SR // 2
    t = np.arange(beat) / SR
    bars = []
    for _ in range(int(seconds * SR) // beat):
        root = 110 * 2 ** (rng.integers(0, 24) / 12)
        chord = sum(np.sin(2 * np.pi * root * r * t) for r in (1, 5 / 4, 3 / 2, 2))
        bars.append(0.1 * chord * np.exp(-4 * t))
    return np.concatenate(bars).astype(np.float32)


NON_SPEECH = {
    "noise 0.001": noise(0.001),
    "noise 0.01": noise(0.01),
    "noise 0.1": noise(0.1),
    "noise 0.5": noise(0.5),
    "faint noise 1e-4": noise(1e-4),  # peak above SILENCE_PEAK: not silent by amplitude
    "music": music(),
}


@pytest.mark.parametrize("name", NON_SPEECH)
def test_non_speech_gives_silent_windows_and_no_text(model, name):
    t = Counting(model, max_new_tokens=6)
    audio = NON_SPEECH[name]
    windows = t.windows(audio)
    assert len(windows) >= 2 and all(w.silent for w in windows)
    assert t.transcribe(audio, SR) == ""
    segments = t.transcribe(audio, SR, return_segments=True)
    assert [s.text for s in segments] == [""] * len(windows)
    assert t.decoded == 0  # the LLM was never asked


def test_digital_silence_is_silent(model):
    t = Counting(model, max_new_tokens=6)
    assert all(w.silent for w in t.windows(np.zeros(SECONDS * SR, np.float32)))
    with pytest.raises(AudioError, match="silent"):  # refused before any window is cut
        t.transcribe(np.zeros(SECONDS * SR, np.float32), SR)


@pytest.fixture(scope="module")
def speech_in_noise(tmp_path_factory):
    """Three espeak-ng sentences, 1 s apart, between 25 s of noise on either side, all on a
    noise floor: (16 kHz samples, [(speech start, end)] in seconds)."""
    tmp = tmp_path_factory.mktemp("no_speech")
    pieces, spans, at = [], [], 25 * SR
    pieces.append(np.zeros(at, np.float32))
    for i, text in enumerate(SENTENCES[:3]):
        x, sr = sf.read(synthesize(text, tmp / f"s{i}.wav"), dtype="float32")
        x = soxr.resample(x, sr, SR).astype(np.float32)
        spans.append((at / SR, (at + len(x)) / SR))
        pieces += [x, np.zeros(SR, np.float32)]
        at += len(x) + SR
    pieces.append(np.zeros(25 * SR, np.float32))
    audio = np.concatenate(pieces)
    return audio + noise(0.01, len(audio) / SR, seed=1), spans


def test_speech_in_noise_keeps_its_windows(model, speech_in_noise):
    audio, spans = speech_in_noise
    t = Counting(model, max_new_tokens=6)
    windows = t.windows(audio)

    def overlap(w):
        return sum(max(0.0, min(w.segment.end, b) - max(w.segment.start, a)) for a, b in spans)

    assert any(overlap(w) > 0.5 for w in windows) and any(overlap(w) == 0 for w in windows)
    for w in windows:
        if overlap(w) > 0.5:
            assert not w.silent, w.segment
        elif overlap(w) == 0:
            assert w.silent, w.segment
    t.transcribe(audio, SR)
    assert t.decoded == sum(not w.silent for w in windows) >= 1


def test_speech_only_off_decodes_the_noise(model):
    t = Counting(model, max_new_tokens=6, speech_only=False)
    audio = NON_SPEECH["noise 0.1"]
    windows = t.windows(audio)
    assert windows and not any(w.silent for w in windows)
    t.transcribe(audio, SR)
    assert t.decoded == len(windows)


def test_without_silero_noise_is_decoded_and_said_once(model, monkeypatch, caplog):
    """The energy fallback takes noise for speech: speech_only cannot help, and says so."""
    monkeypatch.setattr(transcriber_module, "speech_detector", EnergyDetector)
    monkeypatch.setattr(transcriber_module, "_told_no_silero", False)
    t = Transcriber(model, max_new_tokens=6)
    with caplog.at_level(logging.WARNING, logger="west.transcriber"):
        for _ in range(2):
            assert not any(w.silent for w in t.windows(NON_SPEECH["noise 0.1"]))
    assert sum("speech_only" in r.getMessage() for r in caplog.records) == 1
