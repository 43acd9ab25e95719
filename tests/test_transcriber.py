"""west.Transcriber: files and arrays of any length, windows cut at pauses, batches.

The model is tiny and random, so its texts are garbage, but deterministic: the tests
compare texts between paths (file vs array, one batch vs one at a time), never to references.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import west
from west.data.audio import SAMPLE_RATE, AudioError, load_audio
from west.transcriber import Segment, Transcriber, cut_windows

SR = 16000


# Tiny matrices: on a shared 2-core machine, threads only wait for each other.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def transcriber(random_model_dir):
    return west.load(random_model_dir, device="cpu", max_new_tokens=6)


@pytest.fixture(scope="module")
def wavs(speech_dir):
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


@pytest.fixture(scope="module")
def texts(transcriber, wavs):
    return transcriber.transcribe(wavs)


def test_transcribe_files(transcriber, wavs, texts):
    assert isinstance(texts, list) and len(texts) == len(wavs)
    assert all(isinstance(t, str) and "\n" not in t for t in texts)
    assert transcriber.transcribe(wavs) == texts  # deterministic


def test_arrays_mono_and_stereo_match_the_file(transcriber, wavs):
    data, sr = sf.read(wavs[0], dtype="float32")
    assert sr != SR  # espeak writes 22.05 kHz: the array is resampled like the file
    from_file = transcriber.transcribe(wavs[0])
    assert isinstance(from_file, str)
    assert transcriber.transcribe(data, sample_rate=sr) == from_file
    assert transcriber.transcribe(np.stack([data, data], axis=1), sample_rate=sr) == from_file
    with pytest.raises(ValueError, match="sample_rate"):
        transcriber.transcribe(data)
    with pytest.raises(ValueError, match=r"\(channels, T\)"):
        transcriber.transcribe(np.stack([data, data]), sample_rate=sr)


def test_segments_of_short_files(transcriber, wavs, texts):
    segments = transcriber.transcribe(wavs, return_segments=True)
    for segs, text, wav in zip(segments, texts, wavs):
        assert len(segs) == 1 and isinstance(segs[0], Segment)
        assert segs[0].start == 0.0
        assert segs[0].end == pytest.approx(sf.info(wav).duration, abs=1e-3)
        assert segs[0].text == text


def test_long_recording_is_cut_at_pauses_and_every_window_decoded(transcriber, wavs, tmp_path):
    # ~75 s: the espeak sentences with 0.6 s silences, four times over, as 22.05 kHz stereo.
    gap_seconds, pieces, pauses, t = 0.6, [], [], 0.0
    for _ in range(4):
        for w in wavs:
            x, sr = sf.read(w, dtype="float32")
            loud = np.flatnonzero(np.abs(x) > 0.01)
            if pauses or t:
                pauses[-1] = (pauses[-1][0], t + loud[0] / sr)  # this sentence's first sound
            pieces += [x, np.zeros(int(gap_seconds * sr), np.float32)]
            pauses.append((t + loud[-1] / sr, None))  # silence from its last sound on
            t += (len(x) + int(gap_seconds * sr)) / sr
    audio = np.concatenate(pieces[:-1])
    path = tmp_path / "long.wav"
    sf.write(path, np.stack([audio, audio], axis=1), sr)
    duration = len(audio) / sr
    assert duration > 70

    calls = []
    generate = transcriber.model.generate

    def counting_generate(*args, **kwargs):
        out = generate(*args, **kwargs)
        calls.append(len(out))
        return out

    transcriber.model.generate = counting_generate
    try:
        (segs,) = transcriber.transcribe([path], return_segments=True, batch_size=2)
        text = transcriber.transcribe(path, batch_size=2)
    finally:
        del transcriber.model.generate
    assert 3 <= len(segs) <= 4
    assert segs[0].start == 0 and segs[-1].end == pytest.approx(duration, abs=1e-3)
    for a, b in zip(segs, segs[1:]):
        assert a.end == b.start
        assert any(p0 < a.end < p1 for p0, p1 in pauses[:-1]), f"cut at {a.end:.2f} s is in speech"
    assert all(s.end - s.start < 30 for s in segs)
    # Every window decoded, two at a time; the texts are the windows' texts joined.
    assert sum(calls[:2]) == len(segs) and max(calls) <= 2
    assert text == " ".join(s.text for s in segs if s.text)


def test_bad_inputs_name_the_file(transcriber, wavs, tmp_path):
    missing = tmp_path / "missing.wav"
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("this is not audio\n")
    silent = tmp_path / "silent.flac"
    sf.write(silent, np.zeros(SR, np.float32), SR)
    for bad, why in ((missing, "not found"), (not_audio, "not readable"), (silent, "silent")):
        with pytest.raises(AudioError, match=why) as e:
            transcriber.transcribe([wavs[0], bad])
        assert str(bad) in str(e.value)
    out = transcriber.transcribe([missing, wavs[0], silent], skip_bad=True)
    assert out[0] is None and out[2] is None and out[1] == transcriber.transcribe(wavs[0])


def test_cut_windows_cover_the_recording_and_mark_silence():
    rng = np.random.default_rng(0)
    speech = rng.normal(0, 0.3, 10 * SR).astype(np.float32)
    audio = np.concatenate([speech, np.zeros(30 * SR, np.float32), speech])  # 50 s
    windows = cut_windows(audio, max_window_seconds=14.0, search_seconds=4.0)
    assert windows[0].segment.start == 0.0
    assert windows[-1].segment.end == pytest.approx(len(audio) / SR)
    for w, nxt in zip(windows, windows[1:]):
        assert w.segment.end == nxt.segment.start
    for w in windows:
        assert len(w.samples) == round((w.segment.end - w.segment.start) * SR) <= 14 * SR
        assert w.silent == (float(np.abs(w.samples).max()) < 1e-4)
        assert w.segment.text == ""
    assert any(w.silent for w in windows) and not all(w.silent for w in windows)
    assert [w.silent for w in cut_windows(speech)] == [False]  # short: one window


def test_decode_windows_batch_gives_each_window_its_own_text(transcriber, wavs):
    samples = [load_audio(w) for w in wavs[:4]]
    together = transcriber.decode_windows(samples)
    alone = [transcriber.decode_windows([x])[0] for x in samples]
    assert together == alone
    assert together == transcriber.transcribe(wavs[:4])


def test_transcriber_windows_follow_its_settings(transcriber):
    t = Transcriber(transcriber.model, max_window_seconds=40.0, search_seconds=50.0)
    assert t.max_window_seconds == t.window_seconds == 30.0 and t.search_seconds == 30.0
    audio = np.random.default_rng(1).normal(0, 0.3, 70 * SAMPLE_RATE).astype(np.float32)
    assert [w.segment for w in t.windows(audio)] == [
        w.segment for w in cut_windows(audio, 30.0, 30.0)
    ]
