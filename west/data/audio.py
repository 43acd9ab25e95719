"""Audio loading (any format libsndfile or FFmpeg reads; any rate, any channel count) and
Whisper log-mel features.

libsndfile (soundfile) reads what it can: wav, flac, ogg (vorbis, opus), mp3, aiff, ... (fast,
exact). Everything else goes through PyAV's bundled FFmpeg: m4a/aac, webm/opus, wma, amr and
the audio track of video files (mp4, mkv, mov, ...; the first audio stream, other streams
ignored). Either way the samples are mixed down and resampled in one place, prepare_audio.
"""

from __future__ import annotations

import contextlib
import logging
import os
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
_FIRST_ALLOCATION_S = 600  # decoding buffer sized from the header, up to this; grown as needed
# Bare codec streams (FFmpeg's demuxer names): no header gives their length, FFmpeg estimates it
# from the bit rate (10% off for a variable one); their packets are scanned instead.
_BARE_STREAMS = frozenset({"aac", "mp3", "ac3", "eac3", "dts"})

_noted_formats: set[tuple[int, int]] = set()


class AudioError(ValueError):
    """A recording that cannot be used; the message names the file and the problem."""


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
    with _open_av(path, why) as (container, stream):
        rate, channels = _stream_format(path, stream)
        duration = _header_duration(container, stream)
        if duration is None:
            duration = _scan_duration(path, container, stream)
    if duration <= 0:
        raise AudioError(f"{path}: zero-length recording (no samples)")
    return duration, rate, channels


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a recording as float32 mono at `sample_rate`: mixed down and resampled if needed."""
    path = _check_file(path)
    info, why = _sf_info(path)
    if info is None:
        with _open_av(path, why) as (container, stream):
            data, sr = _decode_av(path, container, stream)
        return prepare_audio(data, sr, sample_rate, name=str(path))
    if info.frames <= 0:
        raise AudioError(f"{path}: zero-length recording (no samples)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: unreadable or truncated audio ({e})") from e
    _warn_if_short(path, len(data) / sr, info.frames / info.samplerate)
    return prepare_audio(data, sr, sample_rate, name=str(path))


def prepare_audio(
    data: np.ndarray, sr: int, sample_rate: int = SAMPLE_RATE, name: str = "<array>"
) -> np.ndarray:
    """(T,) or (T, C) samples at `sr` -> float32 mono (T',) at `sample_rate`."""
    data = np.asarray(data, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    if data.shape[0] == 0:
        raise AudioError(f"{name}: zero-length recording (no samples)")
    channels = data.shape[1]
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


# ---- FFmpeg (PyAV) ------------------------------------------------------------------


def _ffmpeg_reason(e: Exception) -> str:
    """FFmpeg's words for an error, without PyAV's errno and file name."""
    return getattr(e, "strerror", None) or str(e)


@contextlib.contextmanager
def _open_av(path: Path, sf_reason: str) -> Iterator[tuple]:
    """(container, first audio stream) of `path` opened with PyAV; AudioError naming the file
    when FFmpeg cannot read it or it holds no audio stream."""
    try:
        import av
    except ImportError as e:
        raise AudioError(
            f"{path}: not readable by libsndfile ({sf_reason}), and PyAV, which reads the other "
            "formats through FFmpeg, is not installed (pip install av)"
        ) from e
    try:
        container = av.open(
            f"file:{os.path.abspath(path)}",  # never read as a URL or another protocol
            container_options={"protocol_whitelist": "file"},
            metadata_errors="replace",
        )
    except (av.FFmpegError, OSError, ValueError) as e:
        raise AudioError(
            f"{path}: not readable audio (libsndfile: {sf_reason}; FFmpeg: {_ffmpeg_reason(e)}); "
            f"{EXPECTED}"
        ) from e
    with container:
        if not container.streams.audio:
            kinds = ", ".join(dict.fromkeys(s.type for s in container.streams)) or "none"
            raise AudioError(f"{path}: no audio stream (streams: {kinds})")
        yield container, container.streams.audio[0]


def _stream_format(path: Path, stream) -> tuple[int, int]:
    """(sample rate, channels) of an audio stream, from its header."""
    ctx = stream.codec_context
    rate, channels = (ctx.sample_rate, ctx.channels) if ctx is not None else (0, 0)
    if rate <= 0 or channels <= 0:
        raise AudioError(
            f"{path}: the audio stream's header gives no sample rate or channel count "
            f"(codec {ctx.name if ctx is not None else 'unknown'}); {EXPECTED}"
        )
    return rate, channels


def _header_duration(container, stream, own: bool = False) -> float | None:
    """Seconds of the audio stream as the header says, or None when it does not say. With
    `own`, the container's duration counts only when the audio is its one stream (else it may
    be a longer video's)."""
    if container.format.name in _BARE_STREAMS:
        return None
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION") or stream.metadata.get("duration")
    if tag:  # Matroska/WebM per-track tag, "HH:MM:SS.nnnnnnnnn"
        try:
            h, m, s = tag.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        except ValueError:
            pass
    if container.duration is not None and (not own or len(container.streams) == 1):
        return container.duration / 1_000_000  # AV_TIME_BASE: microseconds
    return None


def _scan_duration(path: Path, container, stream) -> float:
    """Seconds of the audio stream from its packets' timestamps (demuxed, not decoded)."""
    import av

    end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                last = packet.pts + (packet.duration or 0)
                end = last if end is None else max(end, last)
    except av.FFmpegError as e:
        raise AudioError(
            f"{path}: corrupt or truncated audio data (FFmpeg: {_ffmpeg_reason(e)})"
        ) from e
    if end is None or not stream.time_base:
        raise AudioError(f"{path}: zero-length recording (no audio packets)")
    return float((end - (stream.start_time or 0)) * stream.time_base)


class _Samples:
    """A growing (channels, n) float32 buffer that decoded frames are copied into."""

    def __init__(self, channels: int, room: int):
        self.data = np.empty((channels, max(room, 4096)), dtype=np.float32)
        self.n = 0

    def add(self, block: np.ndarray) -> None:
        """Append a (channels, k) block, doubling the room when it is full."""
        k = block.shape[1]
        if self.n + k > self.data.shape[1]:
            size = max(2 * self.data.shape[1], self.n + k)
            grown = np.empty((self.data.shape[0], size), dtype=np.float32)
            grown[:, : self.n] = self.data[:, : self.n]
            self.data = grown
        self.data[:, self.n : self.n + k] = block
        self.n += k


def _decode_av(path: Path, container, stream) -> tuple[np.ndarray, int]:
    """Decode the audio stream packet by packet: ((T, C) float32 samples, sample rate).

    Frames are converted to planar float32 at the first frame's layout and rate (a format
    conversion only, unless a stream changes rate or channels midway); mixing down and
    resampling to 16 kHz are prepare_audio's.
    """
    import av

    header = _header_duration(container, stream, own=True)
    rate = stream.codec_context.sample_rate or 48000
    room = int(min(header or 60.0, _FIRST_ALLOCATION_S) * rate) + rate
    resampler, samples, at = None, None, 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base:
                at = float(packet.pts * packet.time_base)
            for frame in packet.decode():
                if resampler is None:
                    resampler = av.AudioResampler("fltp", frame.layout, frame.sample_rate)
                    rate = frame.sample_rate
                    samples = _Samples(frame.layout.nb_channels, room)
                for out in resampler.resample(frame):
                    samples.add(out.to_ndarray())
        for out in resampler.resample(None) if resampler is not None else ():
            samples.add(out.to_ndarray())
    except av.FFmpegError as e:
        raise AudioError(
            f"{path}: corrupt or truncated audio data at {at:.2f} s (FFmpeg: {_ffmpeg_reason(e)})"
        ) from e
    if samples is None or samples.n == 0:
        raise AudioError(f"{path}: zero-length recording (no samples decoded)")
    _warn_if_short(path, samples.n / rate, header)
    return samples.data[:, : samples.n].T, rate


def _warn_if_short(path: Path, decoded: float, header: float | None) -> None:
    """Log a warning when far fewer seconds decode than the header announced: a file cut
    short in writing or copying (headers written before the data, as WebM's, still say
    the full length). Not an error: some headers only estimate their duration."""
    if header is not None and header - decoded > max(0.5, 0.05 * header):
        logger.warning(
            "%s: %.2f s of audio decoded, but its header says %.2f s: a truncated file?",
            path,
            decoded,
            header,
        )
