"""west.data.segment: cutting long recordings at pauses, on synthetic signals."""

from __future__ import annotations

import numpy as np

from west.data.segment import frame_energy, split_points

SR = 16000


def _phrases(pauses: list[tuple[float, float]], seconds: float, seed: int = 0) -> np.ndarray:
    """Speech-like noise: 'words' of 0.2-0.5 s, each with a 40 ms closure (as quiet as a
    pause, but short) in the middle, 60-120 ms gaps between words, and silent `pauses`
    ((start, end) in seconds); a faint noise floor everywhere, so silence is not digital."""
    rng = np.random.default_rng(seed)
    audio = rng.normal(0, 1e-3, int(seconds * SR))
    t = 0.0
    while t < seconds:
        if any(a - 0.05 <= t < b for a, b in pauses):
            t = next(b for a, b in pauses if a - 0.05 <= t < b) + 0.05
            continue
        word = rng.uniform(0.2, 0.5)
        if any(t < a < t + word + 0.05 for a, _ in pauses):
            word = min(a for a, _ in pauses if t < a) - t - 0.05  # stop short of the pause
        i, j = int(t * SR), int(min(t + word, seconds) * SR)
        if j > i:
            audio[i:j] += 0.3 * rng.normal(0, 1, j - i) * np.hanning(j - i) ** 0.2
            closure = (i + j) // 2
            audio[closure : closure + int(0.04 * SR)] = rng.normal(0, 1e-3, int(0.04 * SR))[
                : len(audio[closure : closure + int(0.04 * SR)])
            ]
        t += word + rng.uniform(0.06, 0.12)
    return audio.astype(np.float32)


def _check_spans(spans, n, max_seconds=28.0):
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a == prev_b for (a, _), (_, prev_b) in zip(spans[1:], spans[:-1]))
    assert all(0 < b - a <= max_seconds * SR for a, b in spans)


def test_frame_energy_geometry_and_level():
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)  # 1 s
    energy = frame_energy(tone)
    assert len(energy) == 1 + (SR - 400) // 160  # 25 ms frames, 10 ms hop
    assert np.allclose(energy, 10 * np.log10(0.5**2 / 2), atol=0.2)
    assert frame_energy(np.zeros(SR)).max() == -100.0


def test_short_audio_is_one_window():
    assert split_points(np.ones(10 * SR)) == [(0, 10 * SR)]
    assert split_points(np.ones(28 * SR)) == [(0, 28 * SR)]


def test_cuts_land_in_the_pauses():
    # Pauses every ~5 s; only some fall in the last 8 s of a 28 s window.
    pauses = [
        (s, s + 0.5) for s in (4.0, 9.3, 15.1, 21.0, 24.2, 31.5, 38.0, 44.6, 50.3, 57.7, 63.9)
    ]
    audio = _phrases(pauses, 70.0)
    spans = split_points(audio)
    _check_spans(spans, len(audio))
    assert len(spans) == 3
    for _, cut in spans[:-1]:
        inside = [(a, b) for a, b in pauses if a * SR < cut < b * SR]
        assert inside, f"cut at {cut / SR:.2f} s is not in a pause"
        a, b = inside[0]
        assert abs(cut / SR - (a + b) / 2) < 0.1  # the middle of the pause, away from words


def test_cut_prefers_the_quietest_pause():
    # Two pauses in the search region of the first window: one with a hum, one quiet.
    pauses = [(22.0, 22.5), (25.0, 25.5)]
    audio = _phrases(pauses, 40.0, seed=1)
    hum = 0.02 * np.sin(2 * np.pi * 100 * np.arange(int(0.5 * SR)) / SR)
    audio[25 * SR : int(25.5 * SR)] += hum.astype(np.float32)
    (_, cut), _ = split_points(audio)
    assert 22.0 * SR < cut < 22.5 * SR
    # Without the hum the later pause wins ties, keeping windows long.
    (_, cut), _ = split_points(_phrases(pauses, 40.0, seed=1))
    assert 25.0 * SR < cut < 25.5 * SR


def test_no_pause_still_gives_windows_under_the_limit():
    audio = np.random.default_rng(0).normal(0, 0.3, 65 * SR).astype(np.float32)
    spans = split_points(audio)
    _check_spans(spans, len(audio))
    assert len(spans) == 3
    # Nor is a last window of a few samples left over.
    spans = split_points(audio[: int(28.05 * SR)])
    assert len(spans) == 2 and spans[-1][1] - spans[-1][0] >= SR
