"""Splitting long recordings into windows the encoder accepts, cutting in pauses.

Whisper's encoder sees at most 30 s. A longer recording is cut into windows of at most
`max_seconds` (28 s by default, leaving a margin), each cut placed in the quietest stretch
of the last `search_seconds` of its window. Quietness is the frame energy (25 ms frames,
10 ms hop) averaged over `smooth_seconds`, so a pause between words beats the brief
closure of a stop consonant inside one; among equally quiet frames the cut goes to the
middle of the longest quiet run, away from the words on either side.
"""

from __future__ import annotations

import numpy as np

from west.data.audio import SAMPLE_RATE

FRAME_SECONDS = 0.025
HOP_SECONDS = 0.010
ENERGY_FLOOR_DB = -100.0


def frame_energy(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    frame_seconds: float = FRAME_SECONDS,
    hop_seconds: float = HOP_SECONDS,
) -> np.ndarray:
    """(T,) samples -> (F,) energy in dB of each frame; frame i starts at sample i * hop."""
    frame = max(1, round(frame_seconds * sample_rate))
    hop = max(1, round(hop_seconds * sample_rate))
    x = np.asarray(audio, dtype=np.float64)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    n = 1 + (len(x) - frame) // hop
    # Sums of squares over each frame from a cumulative sum: O(T) for any frame size.
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(n) * hop
    power = (c[starts + frame] - c[starts]) / frame
    return np.maximum(10 * np.log10(np.maximum(power, 1e-30)), ENERGY_FLOOR_DB)


def _smooth(energy_db: np.ndarray, width: int) -> np.ndarray:
    """Moving average of `energy_db` over `width` frames, centred (edges use what exists)."""
    if width <= 1:
        return energy_db
    kernel = np.ones(width)
    total = np.convolve(energy_db, kernel, mode="same")
    count = np.convolve(np.ones_like(energy_db), kernel, mode="same")
    return total / count


def _quietest(smoothed: np.ndarray, tolerance_db: float) -> int:
    """Index in the middle of the longest run of frames within `tolerance_db` of the minimum."""
    quiet = smoothed <= smoothed.min() + tolerance_db
    best, best_len, i = 0, -1, 0
    while i < len(quiet):
        if not quiet[i]:
            i += 1
            continue
        j = i
        while j < len(quiet) and quiet[j]:
            j += 1
        if j - i >= best_len:  # ties: the later run, so windows stay long
            best, best_len = (i + j - 1) // 2, j - i
        i = j
    return best


def split_points(
    audio: np.ndarray,
    sample_rate: int = SAMPLE_RATE,
    max_seconds: float = 28.0,
    search_seconds: float = 8.0,
    min_last_seconds: float = 1.0,
    smooth_seconds: float = 0.2,
    tolerance_db: float = 1.0,
) -> list[tuple[int, int]]:
    """Cut (T,) `audio` into contiguous windows of at most `max_seconds`.

    Returns [(start, end)] in samples covering the whole recording in order. Audio no
    longer than `max_seconds` is one window. Each cut lies in the last `search_seconds`
    of its window, at the quietest point there, and (when the recording allows) leaves at
    least `min_last_seconds` for the window after it.
    """
    n = len(audio)
    max_len = int(max_seconds * sample_rate)
    if n <= max_len:
        return [(0, n)]
    if not 0 < search_seconds <= max_seconds:
        raise ValueError(f"search_seconds={search_seconds} must be in (0, max_seconds]")
    hop = max(1, round(HOP_SECONDS * sample_rate))
    frame = max(1, round(FRAME_SECONDS * sample_rate))
    smoothed = _smooth(
        frame_energy(audio, sample_rate), max(1, round(smooth_seconds / HOP_SECONDS))
    )
    search = int(search_seconds * sample_rate)
    min_last = min(int(min_last_seconds * sample_rate), search // 2)
    spans, start = [], 0
    while n - start > max_len:
        hi = min(start + max_len, n - min_last)  # last sample a cut may fall on
        lo = max(start + max_len - search, start + 1)
        # Frames wholly inside [lo, hi]; a cut at a frame's centre.
        f_hi = min(max(0, (hi - frame) // hop), len(smoothed) - 1)
        f_lo = min(-(-lo // hop), f_hi)
        f = f_lo + _quietest(smoothed[f_lo : f_hi + 1], tolerance_db)
        cut = min(max(f * hop + frame // 2, lo), hi)
        spans.append((start, cut))
        start = cut
    spans.append((start, n))
    return spans
