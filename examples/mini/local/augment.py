"""Acoustic augmentation for the synthetic corpus, baked into its wavs.

A synthetic voice is clean, dry and full-band; people are recorded in rooms, through
microphones and phone codecs, over noise. Each training utterance may get a random chain
(drawn by `draw`, reproducibly from the corpus seed; `Augment.spec` is its text form,
kept in data.jsonl and in the wav's name hash):

    speed    sox `speed`: tempo and pitch together, formants shift (vocal tract length)
    eq       sox `bass`/`treble` shelves: a microphone's tilt, +-8 dB
    reverb   sox `reverb`: a room (reverberance %, room scale %)
    noise    white, pink or brown noise at an SNR of 5-30 dB (numpy)
    band     a phone line (300-3400 Hz at 8 kHz) or a low-pass at 4-7 kHz
    codec    GSM 06.10, AMR-NB or mu-law at 8 kHz, or Ogg Vorbis at low quality
    gain     the level, -18 to +2 dB (peaks clipped as a recorder would)

Baked, not on the fly: the frozen Whisper encoder then runs once per utterance
(`encoder_cache_dir`). Needs the `sox` command (Debian `sox`).
"""

from __future__ import annotations

import random
import subprocess
import zlib
from dataclasses import dataclass

import numpy as np

SOX = "sox"
CODECS = ("gsm", "amr-nb", "ulaw", "vorbis")
NOISES = ("white", "pink", "brown")


@dataclass(frozen=True)
class Augment:
    """One utterance's chain; a field left at its default is not applied."""

    speed: float = 1.0
    bass: int = 0  # dB
    treble: int = 0  # dB
    reverb: tuple[int, int] | None = None  # (reverberance %, room scale %)
    noise: tuple[str, int] | None = None  # (colour, SNR dB)
    band: str = ""  # "", "phone", "lp<Hz>"
    codec: str = ""  # "", one of CODECS
    gain: int = 0  # dB

    def spec(self) -> str:
        """`speed=1.05,eq=3:-2,reverb=50:70,noise=pink:15,band=phone,codec=gsm,gain=-6`."""
        parts = []
        if self.speed != 1.0:
            parts.append(f"speed={self.speed:.2f}")
        if self.bass or self.treble:
            parts.append(f"eq={self.bass}:{self.treble}")
        if self.reverb:
            parts.append(f"reverb={self.reverb[0]}:{self.reverb[1]}")
        if self.noise:
            parts.append(f"noise={self.noise[0]}:{self.noise[1]}")
        if self.band:
            parts.append(f"band={self.band}")
        if self.codec:
            parts.append(f"codec={self.codec}")
        if self.gain:
            parts.append(f"gain={self.gain}")
        return ",".join(parts)


def draw(rng: random.Random, share: float) -> Augment:
    """A chain for one utterance: with probability `share` an augmented one, each effect
    drawn on its own (so chains combine: a reverberant, noisy phone call happens)."""
    if rng.random() >= share:
        return Augment()
    speed = round(rng.uniform(0.88, 1.12), 2) if rng.random() < 0.5 else 1.0
    bass, treble = (rng.randint(-8, 8), rng.randint(-8, 8)) if rng.random() < 0.5 else (0, 0)
    reverb = (rng.randint(20, 90), rng.randint(20, 100)) if rng.random() < 0.4 else None
    noise = (rng.choice(NOISES), rng.randint(5, 30)) if rng.random() < 0.5 else None
    band, codec = "", ""
    r = rng.random()
    if r < 0.15:
        band = "phone"
    elif r < 0.3:
        band = f"lp{rng.randrange(4000, 7001, 500)}"
    if rng.random() < 0.2:
        codec = rng.choice(CODECS)
    gain = rng.randint(-18, 2) if rng.random() < 0.5 else 0
    return Augment(speed, bass, treble, reverb, noise, band, codec, gain)


def _sox(audio: np.ndarray, rate: int, args: list[str], out_rate: int | None = None) -> np.ndarray:
    """int16 samples through `sox` (raw in, raw out) with these output options/effects."""
    raw = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1"]
    cmd = [SOX, "-q", "-D", *raw, "-r", str(rate), "-", *raw, "-r", str(out_rate or rate), "-"]
    cmd += args
    proc = subprocess.run(cmd, input=audio.astype("<i2").tobytes(), capture_output=True)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    return np.frombuffer(proc.stdout, dtype="<i2").copy()


def _codec(audio: np.ndarray, rate: int, codec: str) -> np.ndarray:
    """Encode at 8 kHz with `codec` and decode back to `rate`."""
    fmt = {"gsm": ["-t", "gsm"], "amr-nb": ["-t", "amr-nb"], "ulaw": ["-t", "ul"]}
    fmt["vorbis"] = ["-t", "vorbis", "-C", "-1"]  # Ogg Vorbis at its lowest quality
    raw = ["-t", "raw", "-e", "signed", "-b", "16", "-c", "1"]
    enc = [SOX, "-q", "-D", *raw, "-r", str(rate), "-", "-r", "8000", "-c", "1", *fmt[codec], "-"]
    dec = [SOX, "-q", "-D", *fmt[codec][:2], "-", *raw, "-r", str(rate), "-"]
    encoded = subprocess.run(enc, input=audio.astype("<i2").tobytes(), capture_output=True)
    if encoded.returncode != 0:
        raise RuntimeError(f"{' '.join(enc)} failed: {encoded.stderr.decode().strip()}")
    decoded = subprocess.run(dec, input=encoded.stdout, capture_output=True)
    if decoded.returncode != 0:
        raise RuntimeError(f"{' '.join(dec)} failed: {decoded.stderr.decode().strip()}")
    return np.frombuffer(decoded.stdout, dtype="<i2").copy()


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f^0 (white), 1/f (pink) or 1/f^2 (brown) power spectrum."""
    size = 1 << max(n - 1, 1).bit_length()  # a power of two: a fast FFT
    spectrum = np.fft.rfft(rng.standard_normal(size))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    spectrum /= f ** {"white": 0.0, "pink": 0.5, "brown": 1.0}[colour]
    noise = np.fft.irfft(spectrum, size)[:n]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def apply(audio: np.ndarray, rate: int, aug: Augment, seed: str) -> np.ndarray:
    """`audio` (int16, mono, `rate` Hz) through `aug` -> int16 at `rate`. `seed` (the
    utterance's key) makes the noise reproducible."""
    if aug == Augment():
        return audio
    effects: list[str] = []
    if aug.speed != 1.0:
        effects += ["speed", f"{aug.speed}", "rate", str(rate)]
    if aug.bass:
        effects += ["bass", str(aug.bass)]
    if aug.treble:
        effects += ["treble", str(aug.treble)]
    if aug.reverb:
        effects += ["reverb", str(aug.reverb[0]), "50", str(aug.reverb[1])]
    if effects:
        audio = _sox(audio, rate, effects + ["gain", "-n", "-3"])
    x = audio.astype(np.float64)
    if aug.noise:
        colour, snr = aug.noise
        rng = np.random.default_rng(zlib.crc32(seed.encode()))
        power = np.mean(x**2)
        x = x + coloured_noise(len(x), colour, rng) * np.sqrt(power / 10 ** (snr / 10))
    if aug.band or aug.codec:
        peak = np.abs(x).max()
        x = x * min(1.0, 0.7 * 32767 / max(peak, 1.0))  # headroom for the filters
        audio = np.round(x).astype(np.int16)
        if aug.band == "phone":
            audio = _sox(audio, rate, ["sinc", "300-3400", "rate", "8000", "rate", str(rate)])
        elif aug.band:
            audio = _sox(audio, rate, ["sinc", f"-{aug.band[2:]}"])
        if aug.codec:
            audio = _codec(audio, rate, aug.codec)
        x = audio.astype(np.float64)
    x *= 10 ** (aug.gain / 20)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
