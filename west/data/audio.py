"""Audio loading (wav, flac; any rate, any channel count) and Whisper log-mel features."""

from __future__ import annotations

import logging
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

_noted_formats: set[tuple[int, int]] = set()


class AudioError(ValueError):
    """A recording that cannot be used; the message names the file and the problem."""


def audio_info(path: str | Path) -> tuple[float, int, int]:
    """(duration in seconds, sample rate, channels) read from the header only."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes); expected wav or flac audio")
    try:
        info = sf.info(str(path))
    except Exception as e:  # soundfile raises several types for non-audio input
        raise AudioError(f"{path}: not readable audio ({e}); expected wav or flac") from e
    if info.frames <= 0:
        raise AudioError(f"{path}: zero-length recording (no samples)")
    return info.frames / info.samplerate, info.samplerate, info.channels


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a recording as float32 mono at `sample_rate`: mixed down and resampled if needed."""
    audio_info(path)  # clear errors for missing, empty and non-audio files
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:
        raise AudioError(f"{path}: unreadable or truncated audio ({e})") from e
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
