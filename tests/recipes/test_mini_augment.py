"""examples/mini's acoustic augmentation (local/augment.py) on real synthetic speech, real sox."""

from __future__ import annotations

import random
import shutil

import numpy as np
import pytest
from augment import CODECS, Augment, apply, coloured_noise, draw
from espeak import have_espeak, speak

RATE = 16000

pytestmark = pytest.mark.skipif(
    shutil.which("sox") is None or not have_espeak(), reason="needs sox and espeak-ng"
)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    import soxr

    audio, rate = speak("the birch canoe slid on the smooth planks", "en-us", 160, 50)
    return soxr.resample(audio, rate, RATE)


def band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    return float(spectrum[(f >= lo) & (f < hi)].sum() / spectrum.sum())


def test_clean_chain_is_the_input(speech):
    assert apply(speech, RATE, Augment(), "k") is speech
    assert Augment().spec() == ""
    assert all(draw(random.Random(i), 0.0) == Augment() for i in range(20))


def test_speed_changes_duration(speech):
    out = apply(speech, RATE, Augment(speed=1.1), "k")
    assert out.dtype == np.int16
    assert len(out) == pytest.approx(len(speech) / 1.1, rel=0.01)


def test_noise_at_the_asked_snr(speech):
    out = apply(speech, RATE, Augment(noise=("pink", 10)), "k")
    noise = out.astype(np.float64) - speech
    snr = 10 * np.log10(np.mean(speech.astype(np.float64) ** 2) / np.mean(noise**2))
    assert snr == pytest.approx(10, abs=0.3)
    # reproducible from the key, different for another key
    np.testing.assert_array_equal(out, apply(speech, RATE, Augment(noise=("pink", 10)), "k"))
    assert not np.array_equal(out, apply(speech, RATE, Augment(noise=("pink", 10)), "j"))


def test_noise_colours():
    rng = np.random.default_rng(0)
    white, brown = (coloured_noise(RATE, c, rng) for c in ("white", "brown"))
    assert np.sqrt(np.mean(white**2)) == pytest.approx(1.0)
    assert band_energy(brown, 0, 500) > 0.9 > band_energy(white, 0, 500) + 0.5


def test_phone_band_and_lowpass_remove_high_frequencies(speech):
    assert band_energy(speech, 4000, 8000) > 0.01
    phone = apply(speech, RATE, Augment(band="phone"), "k")
    assert band_energy(phone, 3600, 8000) < 1e-4
    assert band_energy(phone, 0, 250) < band_energy(speech, 0, 250)
    low = apply(speech, RATE, Augment(band="lp5000"), "k")
    assert band_energy(low, 5200, 8000) < 1e-4
    assert len(phone) == pytest.approx(len(speech), abs=160)


@pytest.mark.parametrize("codec", CODECS)
def test_codecs_round_trip(speech, codec):
    out = apply(speech, RATE, Augment(codec=codec), "k")
    assert out.dtype == np.int16
    assert len(out) == pytest.approx(len(speech), abs=800)
    assert not np.array_equal(out[: len(speech)], speech[: len(out)])
    # decoded at 8 kHz: nothing left above 4 kHz; still speech-like, not silence
    assert band_energy(out, 4100, 8000) < 0.01
    assert np.abs(out).max() > 1000


def test_reverb_and_eq_keep_length_and_level(speech):
    for aug in (Augment(reverb=(80, 100)), Augment(bass=8, treble=-8)):
        out = apply(speech, RATE, aug, "k")
        assert len(out) == len(speech)
        assert 1000 < np.abs(out).max() <= 32767
        assert not np.array_equal(out, speech)


def test_gain_and_clipping(speech):
    quiet = apply(speech, RATE, Augment(gain=-12), "k")
    ratio = np.abs(quiet).max() / np.abs(speech).max()
    assert ratio == pytest.approx(10 ** (-12 / 20), rel=0.01)


def test_drawn_chains_are_varied_and_reproducible(speech):
    chains = [draw(random.Random(f"s{i}"), 0.7) for i in range(200)]
    assert chains == [draw(random.Random(f"s{i}"), 0.7) for i in range(200)]
    clean = sum(c == Augment() for c in chains)
    assert 30 < clean < 90  # about 30 % (plus chains that drew no effect)
    specs = {c.spec() for c in chains}
    assert len(specs) > 100
    for name in ("speed=", "eq=", "reverb=", "noise=", "band=phone", "band=lp", "codec=", "gain="):
        assert any(name in s for s in specs), name
    for chain in chains[:25]:  # every drawn chain runs
        out = apply(speech, RATE, chain, "k")
        assert out.dtype == np.int16 and len(out) > RATE
