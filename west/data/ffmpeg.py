"""The FFmpeg side of audio loading (PyAV): what libsndfile does not read.

m4a/aac, webm/opus, wma, amr and the audio track of video files (mp4, mkv, mov, ...; the first
audio stream, other streams ignored). PyAV is imported only when a file needs it, so a setup
without it still reads wav/flac/ogg/mp3 through libsndfile. west.data.audio is the public face:
it picks libsndfile or this module, then mixes down and resamples.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from west.data.audio import EXPECTED, AudioError

_FIRST_ALLOCATION_S = 600  # decoding buffer sized from the header, up to this; grown as needed
# Bare codec streams (FFmpeg's demuxer names): no header gives their length, FFmpeg estimates it
# from the bit rate (10% off for a variable one); their packets are scanned instead.
_BARE_STREAMS = frozenset({"aac", "mp3", "ac3", "eac3", "dts"})


def reason(e: Exception) -> str:
    """FFmpeg's words for an error, without PyAV's errno and file name."""
    return getattr(e, "strerror", None) or str(e)


@contextlib.contextmanager
def open_audio(path: Path, sf_reason: str) -> Iterator[tuple]:
    """(container, first audio stream) of `path` opened with PyAV; AudioError naming the file
    when FFmpeg cannot read it or it holds no audio stream. `sf_reason`: why libsndfile could
    not, for the message."""
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
            f"{path}: not readable audio (libsndfile: {sf_reason}; FFmpeg: {reason(e)}); {EXPECTED}"
        ) from e
    with container:
        if not container.streams.audio:
            kinds = ", ".join(dict.fromkeys(s.type for s in container.streams)) or "none"
            raise AudioError(f"{path}: no audio stream (streams: {kinds})")
        yield container, container.streams.audio[0]


def stream_format(path: Path, stream) -> tuple[int, int]:
    """(sample rate, channels) of an audio stream, from its header."""
    ctx = stream.codec_context
    rate, channels = (ctx.sample_rate, ctx.channels) if ctx is not None else (0, 0)
    if rate <= 0 or channels <= 0:
        raise AudioError(
            f"{path}: the audio stream's header gives no sample rate or channel count "
            f"(codec {ctx.name if ctx is not None else 'unknown'}); {EXPECTED}"
        )
    return rate, channels


def header_duration(container, stream, own: bool = False) -> float | None:
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


def scan_duration(path: Path, container, stream) -> float:
    """Seconds of the audio stream from its packets' timestamps (demuxed, not decoded)."""
    import av

    end = None
    try:
        for packet in container.demux(stream):
            if packet.pts is not None:
                last = packet.pts + (packet.duration or 0)
                end = last if end is None else max(end, last)
    except av.FFmpegError as e:
        raise AudioError(f"{path}: corrupt or truncated audio data (FFmpeg: {reason(e)})") from e
    if end is None or not stream.time_base:
        raise AudioError(f"{path}: zero-length recording (no audio packets)")
    return float((end - (stream.start_time or 0)) * stream.time_base)


def decode_blocks(path: Path, container, stream) -> Iterator[tuple[int, np.ndarray]]:
    """Decode the audio stream packet by packet: (sample rate, (k, C) float32 block) pairs.

    Frames are converted to planar float32 at the first frame's layout and rate (a format
    conversion only, unless a stream changes rate or channels midway), so every pair has the
    same rate and C. A block is one decoded frame (about 20-60 ms), a view of planar memory.
    """
    import av

    resampler, at = None, 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base:
                at = float(packet.pts * packet.time_base)
            for frame in packet.decode():
                if resampler is None:
                    resampler = av.AudioResampler("fltp", frame.layout, frame.sample_rate)
                for out in resampler.resample(frame):
                    yield out.sample_rate, out.to_ndarray().T
        for out in resampler.resample(None) if resampler is not None else ():
            yield out.sample_rate, out.to_ndarray().T
    except av.FFmpegError as e:
        raise AudioError(
            f"{path}: corrupt or truncated audio data at {at:.2f} s (FFmpeg: {reason(e)})"
        ) from e


def decode(path: Path, container, stream) -> tuple[np.ndarray, int]:
    """The whole audio stream: ((T, C) float32 samples, sample rate), read into one buffer."""
    header = header_duration(container, stream, own=True)
    samples, rate = None, 0
    for rate, block in decode_blocks(path, container, stream):
        if samples is None:
            room = int(min(header or 60.0, _FIRST_ALLOCATION_S) * rate) + rate
            samples = _Samples(block.shape[1], room)
        samples.add(block)
    if samples is None or samples.n == 0:
        raise AudioError(f"{path}: zero-length recording (no samples decoded)")
    return samples.data[:, : samples.n].T, rate


class _Samples:
    """A growing (channels, n) float32 buffer that decoded blocks are copied into."""

    def __init__(self, channels: int, room: int):
        self.data = np.empty((channels, max(room, 4096)), dtype=np.float32)
        self.n = 0

    def add(self, block: np.ndarray) -> None:
        """Append a (k, channels) block, doubling the room when it is full."""
        k = block.shape[0]
        if self.n + k > self.data.shape[1]:
            size = max(2 * self.data.shape[1], self.n + k)
            grown = np.empty((self.data.shape[0], size), dtype=np.float32)
            grown[:, : self.n] = self.data[:, : self.n]
            self.data = grown
        self.data[:, self.n : self.n + k] = block.T
        self.n += k
