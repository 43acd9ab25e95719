"""Audio loading (any format libsndfile or FFmpeg reads; any rate, any channel count) and
Whisper log-mel features.

libsndfile (soundfile) reads what it can: wav, flac, ogg (vorbis, opus), mp3, aiff, ... (fast,
exact); everything else goes through FFmpeg (west.data.ffmpeg: m4a/aac, webm/opus, video
files' audio tracks, ...). Either way the samples are mixed down to mono and resampled with
soxr: in one shot by load_audio (prepare_audio), or chunk by chunk by stream_audio, which holds
a few chunks in memory whatever the recording's length.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
N_SAMPLES_30S = 30 * SAMPLE_RATE
HOP_LENGTH = 160  # samples per log-mel frame (10 ms); the encoder halves the frame rate
SILENCE_PEAK = 1e-4  # peak amplitude under which a recording counts as silent
EXPECTED = (
    "expected audio that FFmpeg or libsndfile reads: wav, flac, mp3, m4a/aac, ogg/opus, webm, "
    "or a video file's audio track"
)

_noted_formats: set[tuple[int, int]] = set()


class AudioError(ValueError):
    """A recording that cannot be used; the message names the file and the problem."""


class AudioTooLong(AudioError):
    """More audio than a caller's limit."""


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """(duration in seconds, sample rate, channels) read from the header only.

    libsndfile's header when it reads the file, else FFmpeg's: the audio stream's duration,
    else the stream's DURATION tag (Matroska/WebM), else the container's (in a video whose
    audio says nothing of its own length, the longest stream's). When none gives a duration
    (WebM from a browser's recorder has none; bare aac/ac3 streams only estimate one), the
    packets' timestamps are read to the end of the file: demuxed, never decoded.
    """
    path = _check_file(path)
    info, why = _sf_info(path)
    if info is not None:
        if info.frames <= 0:
            raise AudioError(f"{path}: zero-length recording (no samples)")
        return info.frames / info.samplerate, info.samplerate, info.channels
    from west.data import ffmpeg  # imported here: it imports this module (AudioError)

    with ffmpeg.open_audio(path, why) as (container, stream):
        rate, channels = ffmpeg.stream_format(path, stream)
        duration = ffmpeg.header_duration(container, stream)
        if duration is None:
            duration = ffmpeg.scan_duration(path, container, stream)
    if duration <= 0:
        raise AudioError(f"{path}: zero-length recording (no samples)")
    return duration, rate, channels


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a recording as float32 mono at `sample_rate`: mixed down and resampled if needed.

    The whole file is decoded at its own rate and channel count first (a 1-hour 44.1 kHz stereo
    file is 1.3 GB of float32); stream_audio reads long recordings in bounded memory.
    """
    path = _check_file(path)
    info, why = _sf_info(path)
    if info is None:
        from west.data import ffmpeg

        with ffmpeg.open_audio(path, why) as (container, stream):
            header = ffmpeg.header_duration(container, stream, own=True)
            data, sr = ffmpeg.decode(path, container, stream)
        _check_length(path, len(data) / sr, header)
        return prepare_audio(data, sr, sample_rate, name=str(path))
    if info.frames <= 0:
        raise AudioError(f"{path}: zero-length recording (no samples)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: unreadable or truncated audio ({e})") from e
    _check_length(path, len(data) / sr, _sf_header_seconds(path, info))
    return prepare_audio(data, sr, sample_rate, name=str(path))


def stream_audio(
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    chunk_seconds: float = 30.0,
    max_seconds: float | None = None,
    strict_length: bool = False,
) -> Iterator[np.ndarray]:
    """Read a recording as float32 mono chunks (n,) at `sample_rate`, in bounded memory.

    Every chunk holds n = round(chunk_seconds * sample_rate) samples but the last (1 to n).
    The file is decoded a block at a time (libsndfile: `chunk_seconds` of frames; FFmpeg: codec
    frames gathered to 1 s), each block mixed down and fed to soxr's streaming resampler, so
    about three chunks' worth at the file's own rate and channel count is held at most, whatever
    its length (30 s chunks of 44.1 kHz stereo: a 31 MiB peak of numpy arrays, measured).

    Concatenated, the chunks equal load_audio(path, sample_rate) exactly for mono input at
    `sample_rate`. Otherwise they differ only where the two readers do: soxr's streaming
    resampler (the same HQ filter fed block by block, its delay flushed at the end) against its
    one-shot resample, bit-identical on every file measured (wav, flac, ogg, aac, opus, alac;
    8-48 kHz) and tested to 1e-6; and MP3, decoded here by FFmpeg, as libsndfile garbles MP3
    read in blocks, and whole by libsndfile in load_audio: within 2e-6.

    A generator: nothing is opened before the first chunk is asked for, and errors come as
    iteration reaches them. AudioError as load_audio raises it for a missing, empty,
    unreadable or corrupt file (the chunks before a corrupt stretch come first).
    AudioTooLong as soon as more than `max_seconds` have been decoded: nothing more is read.
    With `strict_length`, AudioError when the data ends far short of what the header
    announced (load_audio's threshold; otherwise a warning, as load_audio logs), raised when
    the data ends, before the samples still held are yielded. Silence is not an error here:
    callers decide.
    """
    if chunk_seconds <= 0:
        raise ValueError(f"chunk_seconds must be positive, not {chunk_seconds}")
    path = _check_file(path)
    info, why = _sf_info(path)
    if info is not None and info.frames <= 0:
        raise AudioError(f"{path}: zero-length recording (no samples)")
    settings = dict(
        sample_rate=sample_rate,
        chunk_seconds=chunk_seconds,
        max_seconds=max_seconds,
        strict_length=strict_length,
    )
    if info is not None and info.format != "MP3":
        header = _sf_header_seconds(path, info)
        blocks = _sf_blocks(path, info.samplerate, round(chunk_seconds * info.samplerate))
        yield from _mono_chunks(path, blocks, header, **settings)
        return
    # libsndfile's MP3 reader (libmpg123) garbles the samples at some block boundaries of
    # 8-24 kHz files (errors up to 0.3 measured with libsndfile 1.2.2): FFmpeg decodes MP3
    # here, within 2e-6 of libsndfile's whole-file read, which load_audio uses.
    from west.data import ffmpeg

    with ffmpeg.open_audio(path, why or "MP3 is streamed by FFmpeg") as (container, stream):
        if info is not None:
            header = _sf_header_seconds(path, info)
        else:
            header = ffmpeg.header_duration(container, stream, own=True)
        blocks = _gathered(ffmpeg.decode_blocks(path, container, stream), seconds=1.0)
        yield from _mono_chunks(path, blocks, header, **settings)


def prepare_audio(
    data: np.ndarray, sr: int, sample_rate: int = SAMPLE_RATE, name: str = "<array>"
) -> np.ndarray:
    """(T,) or (T, C) samples at `sr` -> float32 mono (T',) at `sample_rate`."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0:
        raise AudioError(f"{name}: zero-length recording (no samples)")
    _note_format(name, data.shape[1], sr, sample_rate)
    mono = data.mean(axis=1)
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ").astype(np.float32)
    if mono.size == 0 or float(np.abs(mono).max()) < SILENCE_PEAK:
        raise AudioError(f"{name}: silent recording (peak amplitude below {SILENCE_PEAK})")
    return mono


def log_mel(audio: np.ndarray, n_mels: int = 80, pad_to_30s: bool = False) -> torch.Tensor:
    """Whisper's log-mel features, (n_mels, T) with T = len(audio) // 160.

    With `pad_to_30s` the audio is padded to 30 s first, as the 2024 reference does (T = 3000).
    """
    from whisper.audio import log_mel_spectrogram, pad_or_trim

    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    if pad_to_30s:
        x = pad_or_trim(x, N_SAMPLES_30S)
    return log_mel_spectrogram(x, n_mels=n_mels)


# ---- files, libsndfile -------------------------------------------------------------


def _check_file(path: str | Path) -> Path:
    """`path` as a Path; AudioError if it is missing or empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes); {EXPECTED}")
    return path


def _sf_info(path: Path):
    """(libsndfile's header, "") or, when libsndfile cannot read the file, (None, why)."""
    try:
        return sf.info(str(path)), ""
    except Exception as e:  # soundfile raises several types for input it does not read
        why = getattr(e, "error_string", None) or str(e)
        return None, why.strip().rstrip(".")


def _sf_header_seconds(path: Path, info) -> float:
    """Seconds libsndfile's header announces. For PCM WAV, the data chunk's declared size:
    libsndfile reports the frames the file holds, so a WAV cut short would look whole."""
    seconds = info.frames / info.samplerate
    if info.format != "WAV" or not info.subtype.startswith(("PCM", "FLOAT", "DOUBLE")):
        return seconds
    with open(path, "rb") as f:
        if f.read(12)[8:] != b"WAVE":
            return seconds
        frame_bytes = 0
        while len(chunk := f.read(8)) == 8:
            kind, size = struct.unpack("<4sI", chunk)
            if kind == b"data":
                # 0 and 0xFFFFFFFF: a writer that could not seek back to fill in the size.
                if frame_bytes and size not in (0, 0xFFFFFFFF):
                    return max(seconds, size // frame_bytes / info.samplerate)
                return seconds
            size += size % 2  # chunks are padded to an even size
            if kind == b"fmt ":
                fmt = f.read(size)
                frame_bytes = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else 0
            else:
                f.seek(size, 1)
    return seconds


def _sf_blocks(path: Path, rate: int, frames: int) -> Iterator[tuple[int, np.ndarray]]:
    """The file read `frames` at a time: (rate, (k, C) float32 block) pairs."""
    try:
        with sf.SoundFile(str(path)) as f:
            while len(block := f.read(frames, dtype="float32", always_2d=True)):
                yield rate, block
    except RuntimeError as e:  # soundfile's LibsndfileError is one
        raise AudioError(f"{path}: unreadable or truncated audio ({e})") from e


# ---- mixing down, resampling ---------------------------------------------------------


def _mono_chunks(
    path: Path,
    blocks: Iterator[tuple[int, np.ndarray]],
    header: float | None,
    *,
    sample_rate: int,
    chunk_seconds: float,
    max_seconds: float | None,
    strict_length: bool,
) -> Iterator[np.ndarray]:
    """stream_audio's chunks from (rate, (k, C) float32 block) pairs, every rate the same."""
    out = _Rechunk(max(1, round(chunk_seconds * sample_rate)))
    resampler, rate, decoded = None, 0, 0
    for rate, block in blocks:
        if decoded == 0:
            _note_format(str(path), block.shape[1], rate, sample_rate)
            if rate != sample_rate:
                resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
        decoded += len(block)
        if max_seconds is not None and decoded > max_seconds * rate:
            said = f"its header says {header:.2f} s" if header else "its header gives no length"
            raise AudioTooLong(f"{path}: more than {max_seconds:g} s of audio ({said})")
        mono = block.mean(axis=1)  # as prepare_audio mixes, so 16 kHz input is read exactly
        yield from out.add(resampler.resample_chunk(mono) if resampler else mono)
    if decoded == 0:
        raise AudioError(f"{path}: zero-length recording (no samples decoded)")
    _check_length(path, decoded / rate, header, strict_length)
    if resampler is not None:
        yield from out.add(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    yield from out.rest()


def _gathered(
    blocks: Iterator[tuple[int, np.ndarray]], seconds: float
) -> Iterator[tuple[int, np.ndarray]]:
    """Codec frames (20-60 ms) joined into blocks of at least `seconds` (the last may be
    shorter): mixing and resampling cost about 20 us a call, as much as decoding a frame."""
    pending, held, rate = [], 0, 0
    for rate, block in blocks:
        pending.append(block)
        held += len(block)
        if held >= seconds * rate:
            yield rate, np.concatenate(pending)
            pending, held = [], 0
    if pending:
        yield rate, np.concatenate(pending)


class _Rechunk:
    """Pieces of any length in, chunks of `size` samples out (the rest at the end)."""

    def __init__(self, size: int):
        self.size, self.parts, self.held = size, [], 0

    def add(self, piece: np.ndarray) -> Iterator[np.ndarray]:
        """Take `piece`; yield every whole chunk now held."""
        self.parts.append(piece)
        self.held += len(piece)
        while self.held >= self.size:
            yield self._take(self.size)

    def rest(self) -> Iterator[np.ndarray]:
        """The last, shorter chunk, if any samples are left."""
        if self.held:
            yield self._take(self.held)

    def _take(self, n: int) -> np.ndarray:
        joined = np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]
        self.parts = [joined[n:].copy()] if len(joined) > n else []
        self.held = len(joined) - n
        return joined[:n]


def _note_format(name: str, channels: int, sr: int, sample_rate: int) -> None:
    """Log, once per (channels, rate), that such audio is mixed down and resampled."""
    if (channels, sr) != (1, sample_rate) and (channels, sr) not in _noted_formats:
        _noted_formats.add((channels, sr))
        logger.info(
            "note: %s has %d channel(s) at %d Hz; such audio is mixed down to mono and "
            "resampled to %d Hz (noted once per format)",
            name,
            channels,
            sr,
            sample_rate,
        )


def _check_length(path: Path, decoded: float, header: float | None, strict: bool = False) -> None:
    """Warn, or with `strict` raise AudioError, when far fewer seconds decode than the header
    announced: a file cut short in writing or copying (headers written before the data, as
    WebM's and WAV's, still say the full length). A warning by default: some headers only
    estimate their duration."""
    if header is None or header - decoded <= max(0.5, 0.05 * header):
        return
    if strict:
        raise AudioError(
            f"{path}: its header says {header:.2f} s of audio but only {decoded:.2f} s could "
            "be read: a truncated file?"
        )
    logger.warning(
        "%s: %.2f s of audio decoded, but its header says %.2f s: a truncated file?",
        path,
        decoded,
        header,
    )
