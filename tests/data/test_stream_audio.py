"""stream_audio: a recording read chunk by chunk, in about one chunk's memory, as load_audio reads
it whole; limits on its length (max_seconds, strict_length) raised as soon as they are crossed.

Real files written here with soundfile and PyAV (test_audio_formats' encoders and media folder:
espeak-ng speech in every format, and its bad files), plus noise, the hardest input for a
resampler to reproduce.
"""

from __future__ import annotations

import logging
import math
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import test_audio_formats as formats
from test_audio_formats import FORMATS, encode

from west.data import audio
from west.data.audio import AudioError, AudioTooLong, load_audio, stream_audio

# test_audio_formats' fixtures, found here by name: its media folder and the source it was
# encoded from, and the once-per-format notes put back as they were after this module.
media, source, _notes_kept = formats.media, formats.source, formats._notes_kept

# soxr's streaming resampler gave the same samples as its one-shot resample on every file
# here (max difference 0.0); this leaves room for a build that rounds differently.
RESAMPLED_ATOL = 1e-6
# MP3 streams through FFmpeg (libsndfile's MP3 reader garbles block boundaries), load_audio
# reads it whole with libsndfile: the two decoders differ by up to 1.4e-6 (measured).
MP3_ATOL = 1e-5


def noise(seconds: float, rate: int, channels: int, seed: int = 0) -> np.ndarray:
    """(T, C) float32 white noise at -20 dBFS."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((round(seconds * rate), channels))).astype(np.float32)


def streamed(path, **kwargs) -> np.ndarray:
    return np.concatenate(list(stream_audio(path, **kwargs)))


# ---- the same samples as load_audio -----------------------------------------------------


def test_16k_mono_is_read_exactly(tmp_path):
    path = tmp_path / "mono16k.wav"
    sf.write(path, noise(7.3, 16000, 1), 16000)
    for chunk_seconds in (30.0, 1.0, 0.37):
        assert np.array_equal(streamed(path, chunk_seconds=chunk_seconds), load_audio(path))


@pytest.mark.parametrize("chunk_seconds", [30.0, 1.0, 0.37])
def test_44k_stereo_flac_matches(tmp_path, chunk_seconds):
    path = tmp_path / "stereo44k.flac"
    sf.write(path, noise(7.3, 44100, 2), 44100)
    expected = load_audio(path)
    got = streamed(path, chunk_seconds=chunk_seconds)
    assert len(got) == len(expected)
    np.testing.assert_allclose(got, expected, rtol=0, atol=RESAMPLED_ATOL)


@pytest.mark.parametrize("name", [*FORMATS, "bare.aac", "pcm.wav", "flac.mka", "alac.m4a"])
def test_formats_match_load_audio(media, name):
    expected = load_audio(media / name)
    got = streamed(media / name, chunk_seconds=1.0)
    assert got.dtype == np.float32 and got.shape == expected.shape
    atol = MP3_ATOL if name.endswith(".mp3") else RESAMPLED_ATOL
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000])
def test_mp3_block_boundaries(tmp_path, rate):
    # libsndfile 1.2.2 read in blocks garbles MPEG-2 mp3 (errors up to 0.3 at some block
    # sizes, libmpg123 "part2_3_length too large"): odd chunk sizes must not matter.
    path = tmp_path / f"noise{rate}.mp3"
    encode(path, noise(6.0, rate, 1), rate, "libmp3lame")
    expected = load_audio(path)
    for chunk_seconds in (0.0625, 0.5099, 1.0):
        got = streamed(path, chunk_seconds=chunk_seconds)
        np.testing.assert_allclose(got, expected, rtol=0, atol=MP3_ATOL)


@pytest.mark.parametrize(("name", "chunk_seconds"), [("pcm.wav", 0.37), ("stereo44k.m4a", 1.1)])
def test_chunk_sizes(media, name, chunk_seconds):
    chunks = list(stream_audio(media / name, chunk_seconds=chunk_seconds))
    size = round(chunk_seconds * 16000)
    total = sum(len(c) for c in chunks)
    assert len(chunks) == math.ceil(total / size) > 1
    assert all(len(c) == size for c in chunks[:-1]) and 0 < len(chunks[-1]) <= size
    assert all(c.dtype == np.float32 and c.ndim == 1 for c in chunks)


def test_16k_note_once_per_format(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(audio, "_noted_formats", set())
    path = tmp_path / "three.flac"
    sf.write(path, noise(1.0, 11025, 3), 11025)
    with caplog.at_level(logging.INFO, logger="west.data.audio"):
        streamed(path)
        streamed(path)
    notes = [r.message for r in caplog.records if "3 channel(s) at 11025 Hz" in r.message]
    assert len(notes) == 1 and str(path) in notes[0]


# ---- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["missing.wav", "empty.wav", "no_samples.wav", "truncated.flac"]
    + ["notes.m4a", "no_audio.mp4", "truncated.m4a", "corrupt.m4a"],  # test_audio_formats' media
)
def test_bad_files_raise_as_load_audio(media, tmp_path, name):
    # Chunks before a corrupt stretch (truncated.flac, corrupt.m4a) come out first.
    if name == "empty.wav":
        (tmp_path / name).write_bytes(b"")
    if name == "no_samples.wav":
        sf.write(tmp_path / name, np.zeros(0, np.float32), 16000)
    if name == "truncated.flac":
        sf.write(tmp_path / "whole.flac", noise(10.0, 16000, 1), 16000)
        (tmp_path / name).write_bytes((tmp_path / "whole.flac").read_bytes()[:100_000])
    path = media / name if (media / name).exists() else tmp_path / name
    with pytest.raises(AudioError) as loaded:
        load_audio(path)
    with pytest.raises(AudioError) as got:
        streamed(path)
    assert str(got.value) == str(loaded.value) and str(got.value).startswith(f"{path}: ")


def test_silence_is_the_callers_call(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(16000, np.float32), 16000)
    with pytest.raises(AudioError, match="silent recording"):
        load_audio(path)
    assert not streamed(path).any()


# ---- max_seconds ------------------------------------------------------------------------


def test_max_seconds_stops_decoding(tmp_path, monkeypatch):
    path = tmp_path / "twenty.flac"
    sf.write(path, noise(20.0, 44100, 2), 44100)
    frames_read, read = [], sf.SoundFile.read

    def counted_read(self, *args, **kwargs):
        block = read(self, *args, **kwargs)
        frames_read.append(len(block))
        return block

    monkeypatch.setattr(sf.SoundFile, "read", counted_read)
    chunks = []
    with pytest.raises(AudioTooLong) as e:
        for chunk in stream_audio(path, chunk_seconds=1.0, max_seconds=5):
            chunks.append(chunk)
    assert str(e.value) == f"{path}: more than 5 s of audio (its header says 20.00 s)"
    assert len(chunks) < 5  # only what lay within the limit came out
    assert sum(frames_read) <= 6 * 44100  # the limit and one block past it were decoded


def test_max_seconds_through_ffmpeg(media):
    # A browser's recording says nothing of its length.
    with pytest.raises(AudioTooLong, match=r"more than 0.5 s of audio \(its header gives no"):
        streamed(media / "recorder.webm", max_seconds=0.5)
    with pytest.raises(AudioTooLong, match=r"more than 1 s of audio \(its header says \d"):
        streamed(media / "speech.m4a", max_seconds=1)
    assert len(streamed(media / "speech.m4a", max_seconds=60)) == len(
        load_audio(media / "speech.m4a")
    )


# ---- strict_length ----------------------------------------------------------------------


def test_strict_length_truncated_wav(tmp_path, caplog):
    whole = tmp_path / "whole.wav"
    sf.write(whole, noise(60.0, 16000, 1), 16000, subtype="PCM_16")
    path = tmp_path / "x.wav"
    path.write_bytes(whole.read_bytes()[: 44 + 2 * round(1.2 * 16000)])
    assert sf.info(path).duration == pytest.approx(1.2)  # libsndfile reports what is there
    with pytest.raises(AudioError) as e:
        streamed(path, strict_length=True)
    assert str(e.value) == (
        f"{path}: its header says 60.00 s of audio but only 1.20 s could be read: a truncated file?"
    )
    with caplog.at_level(logging.WARNING, logger="west.data.audio"):
        assert len(streamed(path)) == round(1.2 * 16000)
    assert "1.20 s of audio decoded, but its header says 60.00 s" in caplog.text
    assert len(streamed(whole, strict_length=True)) == 60 * 16000


@pytest.mark.parametrize(("codec", "suffix"), [("libopus", ".webm"), ("flac", ".mka")])
def test_strict_length_truncated_matroska(tmp_path, codec, suffix):
    # Matroska writes its duration before the data: a cut file still says the full length.
    whole = encode(tmp_path / f"whole{suffix}", noise(10.0, 48000, 1), 48000, codec)
    path = tmp_path / f"x{suffix}"
    path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 3])
    with pytest.raises(AudioError, match=r"its header says 10.0\d s of audio but only [0-4]\."):
        streamed(path, strict_length=True)
    assert len(streamed(path)) < 5 * 16000
    assert len(streamed(whole, strict_length=True)) == pytest.approx(10 * 16000, abs=800)


# ---- memory -----------------------------------------------------------------------------


def test_memory_stays_at_a_chunk(tmp_path):
    """Ten minutes of 44.1 kHz stereo (212 MB as float32) read in 10 s chunks: numpy's
    allocations (traced by tracemalloc) peak at about three chunks' worth of input."""
    rate, minutes, chunk_seconds = 44100, 10, 10.0
    path = tmp_path / "long.flac"
    piece = noise(30.0, rate, 2)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        for _ in range(2 * minutes):
            f.write(piece)
    decoded_bytes = minutes * 60 * rate * 2 * 4
    chunk_bytes = chunk_seconds * rate * 2 * 4
    tracemalloc.start()
    try:
        samples = sum(len(c) for c in stream_audio(path, chunk_seconds=chunk_seconds))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert samples == minutes * 60 * 16000
    assert peak < 4 * chunk_bytes < decoded_bytes / 10
