"""Voice activity detection for streaming: a speech probability per 32 ms frame.

Silero VAD (the `silero-vad` package, whose wheel ships the TorchScript weights) scores
frames of 512 samples at 16 kHz. It is recurrent: an LSTM state and the last 64 samples
of the previous frame carry over from frame to frame, so one `SpeechDetector` follows one
stream, call after call, and gives the same probabilities however the stream's audio is
cut into calls. The network is loaded once per process and shared by every detector (its
inner module is a pure function of the frame and the state, so detectors on different
threads do not interfere); a detector holds only its own state.

The weights are found through the package's location, not by importing it: importing
`silero_vad` sets torch's thread count to 1 for the whole process, and its audio helpers
may import torchaudio; neither is wanted here.

When Silero cannot be loaded (the package missing or broken), `speech_detector` warns and
falls back to `EnergyDetector`: a frame's energy mapped to a pseudo-probability, which
tells speech from silence in clean recordings but not from noise.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
import torch

from west.data.audio import SAMPLE_RATE

logger = logging.getLogger(__name__)

FRAME = 512  # samples per frame at 16 kHz (the only size Silero accepts at this rate)
FRAME_SECONDS = FRAME / SAMPLE_RATE  # 0.032
_CONTEXT = 64  # samples of the previous frame that Silero prepends to each frame

_lock = threading.Lock()
_silero = None  # the loaded TorchScript network, or False once loading has failed


def silero_path() -> Path | None:
    """The packaged `silero_vad.jit` of the installed silero-vad, or None (not installed)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "silero_vad.jit"
    return path if path.is_file() else None


def _load_silero():
    """The shared 16 kHz network (Silero's `_model`), or None when it cannot be loaded."""
    global _silero
    with _lock:
        if _silero is None:
            path = silero_path()
            try:
                if path is None:
                    raise FileNotFoundError("silero_vad/data/silero_vad.jit not found")
                model = torch.jit.load(str(path), map_location="cpu").eval()
                _silero = model._model  # (frames with context, state) -> (prob, state)
            except Exception as e:  # a missing or broken package: the fallback warns
                logger.debug("silero-vad not loaded: %s", e)
                _silero = False
        return _silero or None


class SileroDetector:
    """Silero VAD over one stream: `probabilities(frames)` scores the next frames."""

    name = "silero"

    def __init__(self, network):
        self._net = network
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far (as at its start)."""
        self._state = torch.zeros(2, 1, 128)
        self._context = torch.zeros(1, _CONTEXT)

    @torch.inference_mode()
    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        """(n, 512) float32 frames at 16 kHz, the stream's next ones -> (n,) speech
        probabilities in [0, 1]. Run on one thread (one_thread)."""
        frames = _check_frames(frames)
        out = np.empty(len(frames), dtype=np.float32)
        with one_thread():
            for i, frame in enumerate(torch.from_numpy(frames)):
                x = torch.cat([self._context, frame[None]], dim=1)
                prob, self._state = self._net(x, self._state)
                self._context = x[:, -_CONTEXT:]
                out[i] = float(prob)
        return out


@contextlib.contextmanager
def one_thread():
    """torch on one thread in the calling thread for a while (its setting is restored).

    Silero's ops are tiny (a 32 ms frame at a time): more threads only add synchronisation,
    and outside a process's main thread (west-serve's upload threads, beside its decoding
    thread) torch's OpenMP threads made it four times slower on 2 cores (25 minutes of audio:
    about 40 s instead of 9 s, AMD EPYC)."""
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class EnergyDetector:
    """The fallback: a frame's level in dBFS mapped to (0, 1) by a logistic curve centred at
    `center_db` (-45 dBFS: quiet speech is louder, a quiet room quieter)."""

    name = "energy"

    def __init__(self, center_db: float = -45.0, width_db: float = 3.0):
        self.center_db, self.width_db = center_db, width_db

    def reset(self) -> None:
        pass

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        frames = _check_frames(frames).astype(np.float64)
        power = np.mean(frames * frames, axis=1)
        db = 10 * np.log10(np.maximum(power, 1e-12))
        return (1 / (1 + np.exp(-(db - self.center_db) / self.width_db))).astype(np.float32)


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.ascontiguousarray(frames, dtype=np.float32)
    if frames.ndim != 2 or frames.shape[1] != FRAME:
        raise ValueError(f"frames of shape {frames.shape}: expected (n, {FRAME}) at 16 kHz")
    return frames


_warned = False


def speech_detector() -> SileroDetector | EnergyDetector:
    """A detector for one new stream: Silero's, else (with a warning, once) the energy one."""
    global _warned
    network = _load_silero()
    if network is not None:
        return SileroDetector(network)
    if not _warned:
        _warned = True
        logger.warning(
            "silero-vad could not be loaded (pip install silero-vad); voice activity is "
            "detected from frame energy instead, which mistakes noise for speech"
        )
    return EnergyDetector()
