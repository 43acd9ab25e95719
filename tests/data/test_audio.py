"""Audio loading: odd but valid input is converted, bad input is refused by name."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from west.data.audio import AudioError, audio_info, load_audio, log_mel


@pytest.fixture(scope="module")
def speech(speech_dir):
    data, sr = sf.read(speech_dir / "utt0.wav", dtype="float32")
    return data, sr


@pytest.mark.parametrize("rate", [8000, 44100])
def test_other_rates_are_resampled_with_a_note(speech, tmp_path, rate, caplog):
    import soxr

    data, sr = speech
    path = tmp_path / f"x{rate}.flac"
    sf.write(path, soxr.resample(data, sr, rate), rate)
    with caplog.at_level(logging.INFO, logger="west.data.audio"):
        audio = load_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / 16000 - len(data) / sr) < 0.01
    assert any(f"at {rate} Hz" in r.message for r in caplog.records)


def test_stereo_is_mixed_down(speech, tmp_path):
    data, sr = speech
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([data, 0.5 * data], axis=1), sr)
    audio = load_audio(path)
    mono = load_audio_from_array(data, sr, tmp_path)
    np.testing.assert_allclose(audio, 0.75 * mono, atol=1e-4)


def load_audio_from_array(data, sr, tmp_path):
    path = tmp_path / "mono.wav"
    sf.write(path, data, sr, subtype="FLOAT")
    return load_audio(path)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not audio\n"), "not readable audio"),
        (lambda p: sf.write(p, np.zeros(16000, dtype=np.float32), 16000), "silent recording"),
        (lambda p: sf.write(p, np.zeros(0, dtype=np.float32), 16000), "zero-length"),
    ],
    ids=["missing", "zero-bytes", "text", "silent", "no-samples"],
)
def test_bad_audio_named(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as e:
        load_audio(path)
    assert str(path) in str(e.value)


def test_truncated_wav(speech_dir, tmp_path):
    data = (speech_dir / "utt1.wav").read_bytes()
    path = tmp_path / "truncated.wav"
    path.write_bytes(data[:30])  # header cut in the middle
    with pytest.raises(AudioError, match=str(path)):
        load_audio(path)


def test_mel_frames_follow_length(speech_dir):
    audio = load_audio(speech_dir / "utt2.wav")
    assert log_mel(audio).shape == (80, len(audio) // 160)
    assert log_mel(audio, pad_to_30s=True).shape == (80, 3000)
    duration, rate, channels = audio_info(speech_dir / "utt2.wav")
    assert (
        rate == 22050 and channels == 1 and duration == pytest.approx(len(audio) / 16000, abs=1e-3)
    )
