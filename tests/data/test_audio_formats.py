"""Audio in the formats people have: mp3, m4a, ogg, webm, video files' audio tracks.

Real files: espeak-ng speech encoded here with PyAV (FFmpeg's encoders), then read back with
load_audio / audio_info and compared with the soundfile-read source.
"""

from __future__ import annotations

import fractions
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SENTENCES, synthesize

from west.data.audio import AudioError, audio_info, load_audio, prepare_audio
from west.data.dataset import DataError
from west.data.inputs import find_inputs

av = pytest.importorskip("av")

# Lossy codecs at their default bitrates keep speech's waveform in place: the decoded audio
# correlates with the source at 0.99+ (measured: aac, opus, vorbis 0.998, mp3 0.990). One
# sample of misalignment at 16 kHz already drops it to about 0.88, and a wrong channel layout
# or sample format to noise, so 0.95 checks alignment and content, not just loudness.
MIN_CORRELATION = 0.95


def slack(rate: int) -> float:
    """Seconds the decoded length may differ by: codec padding. aac decodes up to one frame of
    1024 samples past the end (46 ms at 22.05 kHz, 128 ms at 8 kHz); 60 ms at least."""
    return max(0.06, 1024 / rate + 0.005)


class _WriteOnly:
    """A file that cannot seek, as a browser's recorder streams: WebM without a duration."""

    def __init__(self):
        self.buffer = io.BytesIO()

    def write(self, data) -> int:
        return self.buffer.write(data)


def encode(target, data, sr, codec, rate=None, container=None, options=None, video_s=0.0):
    """Write `data` ((T, C) float32 or int16 at `sr`) to `target` (a path or a file) as
    `codec` audio at `rate`, after `video_s` seconds of black h264 video if asked; with
    `codec` None, video only. Returns `target`."""
    with av.open(target if not isinstance(target, Path) else str(target), "w", container) as out:
        video = _video_stream(out) if video_s else None
        if codec is not None:
            layout = "mono" if data.shape[1] == 1 else "stereo"
            audio = out.add_stream(codec, rate=rate or sr, layout=layout, options=options or {})
        if video is not None:
            _write_video(out, video, video_s)
        if codec is not None:
            _write_audio(out, audio, data, sr)
    return target


def _video_stream(out):
    """A 64x64 h264 stream at 10 fps."""
    stream = out.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
    stream.width = stream.height = 64
    stream.pix_fmt = "yuv420p"
    return stream


def _write_video(out, stream, seconds: float) -> None:
    """`seconds` of black frames."""
    for i in range(round(seconds * 10)):
        frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))


def _write_audio(out, stream, data, sr) -> None:
    """`data` as one frame, converted to the stream's rate by FFmpeg, then encoded."""
    layout = stream.layout.name
    if data.dtype == np.int16:  # packed, exact for lossless codecs
        frame = av.AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout=layout)
    else:
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.T), "fltp", layout)
    frame.sample_rate, frame.pts, frame.time_base = sr, 0, fractions.Fraction(1, sr)
    resampler = av.AudioResampler(frame.format.name, layout, stream.rate)
    for part in resampler.resample(frame) + resampler.resample(None):
        out.mux(stream.encode(part))
    out.mux(stream.encode(None))


@pytest.fixture(scope="module", autouse=True)
def _notes_kept():
    """The once-per-format notes (8 kHz mono, ...) this module triggers are forgotten after it:
    tests/data/test_audio.py expects the note for formats it reads first."""
    from west.data import audio

    before = set(audio._noted_formats)
    yield
    audio._noted_formats.clear()
    audio._noted_formats.update(before)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """espeak-ng speech: (its wav, (T, 1) float32 samples, their rate)."""
    wav = synthesize(SENTENCES[0], tmp_path_factory.mktemp("source") / "speech.wav")
    data, sr = sf.read(wav, dtype="float32", always_2d=True)
    return wav, data, sr


# name -> (channels and rate audio_info reports, how loud the mono mix is, 1 = the source)
FORMATS = {
    "speech.mp3": (1, 22050, 1.0),
    "speech.m4a": (1, 22050, 1.0),
    "opus.ogg": (1, 48000, 1.0),
    "opus.webm": (1, 48000, 1.0),
    "recorder.webm": (1, 48000, 1.0),  # streamed: no duration in its header
    "vorbis.ogg": (2, 22050, 0.75),  # FFmpeg's vorbis encoder takes stereo only
    "video.mp4": (1, 22050, 1.0),  # h264 + aac; the video lasts 1 s longer
    "stereo44k.m4a": (2, 44100, 0.75),
    "phone8k.m4a": (1, 8000, 1.0),
}


@pytest.fixture(scope="module")
def media(source, tmp_path_factory) -> Path:
    """A folder holding the source encoded as FORMATS, plus the bad files."""
    import soxr

    _, mono, sr = source
    stereo = np.concatenate([mono, 0.5 * mono], axis=1)  # mono mix: 0.75 of the source
    out = tmp_path_factory.mktemp("media")
    seconds = len(mono) / sr
    encode(out / "speech.mp3", mono, sr, "libmp3lame")
    encode(out / "speech.m4a", mono, sr, "aac")
    encode(out / "opus.ogg", mono, sr, "libopus", rate=48000)
    encode(out / "opus.webm", mono, sr, "libopus", rate=48000)
    streamed = encode(_WriteOnly(), mono, sr, "libopus", rate=48000, container="webm")
    (out / "recorder.webm").write_bytes(streamed.buffer.getvalue())
    encode(out / "vorbis.ogg", stereo, sr, "vorbis", options={"strict": "experimental"})
    encode(out / "video.mp4", mono, sr, "aac", video_s=seconds + 1)
    encode(out / "stereo44k.m4a", soxr.resample(stereo, sr, 44100), 44100, "aac")
    encode(out / "phone8k.m4a", soxr.resample(mono, sr, 8000), 8000, "aac")
    encode(out / "bare.aac", mono, sr, "aac", container="adts")  # no container, no length
    # Lossless, stereo: packed (flac in Matroska) and planar (ALAC) decoder output.
    pcm = np.round(stereo * 32767).astype(np.int16)
    sf.write(out / "pcm.wav", pcm, sr)
    encode(out / "flac.mka", pcm, sr, "flac")
    encode(out / "alac.m4a", pcm, sr, "alac")
    # Bad files.
    encode(out / "no_audio.mp4", None, sr, None, video_s=2)
    (out / "notes.m4a").write_text("these are notes, not audio\n")
    good = (out / "speech.m4a").read_bytes()
    (out / "truncated.m4a").write_bytes(good[: len(good) // 2])  # its index (moov) is at the end
    (out / "corrupt.m4a").write_bytes(_corrupt(good))
    return out


def _corrupt(data: bytes) -> bytes:
    """`data` with 200 random bytes overwritten in its middle third (the coded audio)."""
    rng = np.random.default_rng(0)
    out = bytearray(data)
    for i in rng.integers(len(out) // 3, 2 * len(out) // 3, 200):
        out[i] = int(rng.integers(256))
    return bytes(out)


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    return float(np.dot(x, y) / np.sqrt(np.dot(x, x) * np.dot(y, y)))


@pytest.mark.parametrize("name", FORMATS)
def test_formats_decode_like_the_source(media, source, name):
    _, mono, sr = source
    channels, rate, loudness = FORMATS[name]
    reference = prepare_audio(mono, sr)
    audio = load_audio(media / name)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - len(reference)) / 16000 < slack(rate)
    assert _correlation(audio, reference) > MIN_CORRELATION
    rms = np.sqrt(np.mean(audio**2) / np.mean(reference**2))
    assert rms == pytest.approx(loudness, rel=0.15)  # mixed down as a mean, not a sum

    duration, got_rate, got_channels = audio_info(media / name)
    assert (got_rate, got_channels) == (rate, channels)
    assert abs(duration - len(mono) / sr) < slack(rate)


@pytest.mark.parametrize("name", ["flac.mka", "alac.m4a"])
def test_lossless_matches_soundfile(media, name):
    expected = load_audio(media / "pcm.wav")  # read by soundfile
    np.testing.assert_allclose(load_audio(media / name), expected, atol=1e-6)
    assert audio_info(media / name)[1:] == audio_info(media / "pcm.wav")[1:]


def test_duration_without_a_header(media, source):
    # Streamed WebM (a browser's recorder) says nothing of its length: the packets are read.
    with av.open(str(media / "recorder.webm")) as c:
        stream = c.streams.audio[0]
        assert c.duration is None and stream.duration is None and not stream.metadata
    _, mono, sr = source
    assert abs(audio_info(media / "recorder.webm")[0] - len(mono) / sr) < slack(48000)


def test_duration_of_a_bare_stream(media):
    # FFmpeg would estimate it from the bit rate; the packets give it exactly, priming included.
    duration, rate, channels = audio_info(media / "bare.aac")
    assert (rate, channels) == (22050, 1)
    assert duration == pytest.approx(len(load_audio(media / "bare.aac")) / 16000, abs=1e-3)


def test_audio_info_reads_the_header_only(media, source):
    # The coded audio is damaged, the header is not: audio_info answers, decoding fails.
    _, mono, sr = source
    duration, rate, channels = audio_info(media / "corrupt.m4a")
    assert abs(duration - len(mono) / sr) < slack(sr) and (rate, channels) == (sr, 1)
    with pytest.raises(AudioError, match="corrupt or truncated audio data at") as e:
        load_audio(media / "corrupt.m4a")
    assert str(media / "corrupt.m4a") in str(e.value)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("no_audio.mp4", r"no audio stream \(streams: video\)"),
        ("notes.m4a", r"not readable audio \(.*\); expected audio that FFmpeg or libsndfile reads"),
        ("truncated.m4a", r"not readable audio \(.*FFmpeg: Invalid data"),
    ],
)
def test_bad_files_are_named(media, name, message):
    for read in (audio_info, load_audio):
        with pytest.raises(AudioError, match=message) as e:
            read(media / name)
        assert str(e.value).startswith(f"{media / name}: ")


def test_find_inputs_finds_every_format(media, tmp_path):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    names = [*FORMATS, "bare.aac", "flac.mka", "alac.m4a", "pcm.wav", "no_audio.mp4"]
    for i, name in enumerate(names):
        shutil.copy(media / name, folder / ("sub" if i % 2 else "") / name.upper())
    (folder / "notes.txt").write_text("not audio\n")
    found = [x.path for x in find_inputs([folder])]
    assert found == sorted(str(p) for p in folder.rglob("*") if p.suffix != ".txt" and p.is_file())
    assert len(found) == len(names)

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not audio\n")
    with pytest.raises(DataError, match=r"holds no audio or video files \(.*\.m4a .*\.mp4"):
        find_inputs([empty])
