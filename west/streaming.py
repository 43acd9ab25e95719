"""Live transcription: audio fed in chunks as it arrives, utterances out as events.

    stream = Stream(west.load("exported/"))
    for chunk in microphone_chunks():  # any size, any rate
        for event in stream.feed(chunk, 48000):
            print(event)
    for event in stream.close():
        print(event)

A Stream resamples what it is fed to 16 kHz (soxr's streaming resampler: the samples are
those a one-shot resampling of the whole recording gives, however it is cut into chunks),
scores each 32 ms frame with a voice activity detector (west.data.vad: Silero), and cuts
utterances where a person pauses. Events, in order, with times in seconds from the
stream's start:

  SpeechStarted(index, start, audio_start)  the VAD heard speech begin
  Partial(index, text, start, end)          the utterance so far, while it goes on
  SpeechStopped(index, end, audio_end)      a long enough pause ended it
  Committed(index, start, end)              its audio is fixed and sent to be decoded
  Final(index, text, start, end, error)     its text: the model's full decoding

A Final's text is `Transcriber.decode_windows` of exactly the samples from `start` to
`end` (joint CTC / LLM where the model's settings say so): streaming adds no decoding of
its own, so a Final says what the offline model says of the same audio.

Latency, and the choices behind it:
- speech_started: one 32 ms VAD frame after the audio arrives (Silero needs no lookahead).
- partials: every `partial_interval` (0.32 s) of new audio while a person speaks, the CTC
  branch's best path of the whole utterance so far (`Transcriber.partial_texts`: the
  encoder and the CTC head, no LLM pass). Whisper's encoder keeps no state between calls,
  so each partial re-encodes the utterance: its cost grows with the utterance's length,
  which `max_utterance` bounds. A model without a CTC branch gives no partials (the LLM's
  full decoding is too slow to repeat three times a second).
- end of an utterance: `min_silence` (0.5 s, OpenAI's server_vad default) after speech
  stops, then one full decoding of the utterance. Shorter silences answer sooner but cut
  at the pauses inside sentences; the VAD's hysteresis (a frame counts as silence only
  below threshold - 0.15) keeps brief dips from starting the count.
- `prefix_padding` (0.3 s, OpenAI's default) of audio before the detected onset is kept,
  so a soft first consonant that the VAD missed is still decoded; the utterance's audio
  ends where the silence that ended it was confirmed (OpenAI's convention too).
- an utterance is forced to end at `max_utterance` (the Transcriber's window, 28 s): it is
  cut at the least speech-like frame of its last few seconds and the next one starts there.
- `min_speech` (0.1 s): shorter bursts (a click, a cough) still give their events, with an
  empty Final, undecoded, so the LLM is never asked to transcribe noise.

Decoding is injectable: `decode` and `partial` take a (T,) 16 kHz array and return its
text, or a concurrent.futures.Future of it. Given futures, a Stream does not wait: events
whose text is not ready yet come out of a later `feed`/`poll` (Finals always in utterance
order; a Partial is dropped once a newer one is asked for, or its utterance has ended),
and `on_ready` is called (from any thread) whenever a result arrives. west.serve passes
functions that queue the audio on its dynamic batcher, so the Python API and the server
share this one implementation of endpointing.

Without `turn_detection` no VAD runs: the audio since the last `flush()` (OpenAI's
input_audio_buffer.commit) is one utterance.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import soxr

from west.data.audio import SAMPLE_RATE, SILENCE_PEAK
from west.data.segment import split_points
from west.data.vad import FRAME, speech_detector

logger = logging.getLogger(__name__)

# A decoding function: (T,) 16 kHz samples -> the text, or a Future of it.
Decode = Callable[[np.ndarray], str | concurrent.futures.Future]


@dataclasses.dataclass(frozen=True)
class SpeechStarted:
    """Speech began at `start`; the utterance's audio begins at `audio_start` (`start`
    less the prefix padding, never before the previous utterance's end)."""

    index: int
    start: float
    audio_start: float


@dataclasses.dataclass(frozen=True)
class Partial:
    """The CTC branch's text of utterance `index` so far, decoded from `start` to `end`."""

    index: int
    text: str
    start: float
    end: float


@dataclasses.dataclass(frozen=True)
class SpeechStopped:
    """Speech stopped at `end`; the utterance's audio ends at `audio_end` (after the
    silence that ended it; at the cut, for an utterance forced to end)."""

    index: int
    end: float
    audio_end: float


@dataclasses.dataclass(frozen=True)
class Committed:
    """Utterance `index`'s audio, `start` to `end`, is fixed and sent to be decoded."""

    index: int
    start: float
    end: float


@dataclasses.dataclass(frozen=True)
class Final:
    """Utterance `index`'s text: the full decoding of its audio, `start` to `end`. `error`
    says why the text is empty when decoding failed."""

    index: int
    text: str
    start: float
    end: float
    error: str | None = None


Event = SpeechStarted | Partial | SpeechStopped | Committed | Final


@dataclasses.dataclass
class _Utterance:
    index: int
    speech_start: int  # samples from the stream's start (16 kHz)
    audio_start: int
    speech_end: int
    frames: list[tuple[int, float]] = dataclasses.field(default_factory=list)  # (start, prob)
    silence_start: int | None = None
    partial_at: int = 0  # end of the audio the last partial was asked for
    partial_text: str | None = None  # the last partial given out


def decode_with(transcriber) -> Callable[[np.ndarray], str]:
    """`transcriber`'s full decoding of one utterance, as the Transcriber itself treats a
    window: a silent one (peak below SILENCE_PEAK) is not decoded and has no text."""

    def decode(audio: np.ndarray) -> str:
        if audio.size == 0 or float(np.abs(audio).max()) < SILENCE_PEAK:
            return ""
        return transcriber.decode_windows([audio])[0]

    return decode


def partial_with(transcriber) -> Callable[[np.ndarray], str]:
    """`transcriber`'s partial text of an utterance so far (its CTC branch's best path)."""

    def partial(audio: np.ndarray) -> str:
        return transcriber.partial_texts([audio])[0]

    return partial


class Stream:
    """Endpointing and decoding of one live audio stream (see the module docstring).

    transcriber: decodes utterances (and gives partials when its model has a CTC branch),
        unless `decode` / `partial` are given; it also sets the default `max_utterance`
        (its `max_window_seconds`) and caps it (its encoder's window).
    decode, partial: injected decoding functions (module docstring); `partial=False`, or a
        `partial_interval` of 0, turns partials off.
    turn_detection: cut utterances at pauses (VAD); False: only `flush()` ends one.
    threshold: VAD speech probability at which speech starts (Silero's frames, 32 ms).
    min_silence, prefix_padding, partial_interval, min_speech, max_utterance: seconds.
    detector: the VAD (west.data.vad.speech_detector() by default).
    on_ready: called, from any thread, when a decoding result arrives (for `poll`).
    """

    def __init__(
        self,
        transcriber=None,
        *,
        decode: Decode | None = None,
        partial: Decode | None | bool = None,
        turn_detection: bool = True,
        threshold: float = 0.5,
        min_silence: float = 0.5,
        prefix_padding: float = 0.3,
        partial_interval: float = 0.32,
        min_speech: float = 0.1,
        max_utterance: float | None = None,
        detector=None,
        on_ready: Callable[[], None] | None = None,
    ):
        if decode is None:
            if transcriber is None:
                raise ValueError("Stream needs a Transcriber or a decode= function")
            decode = decode_with(transcriber)
        if partial is None and transcriber is not None and transcriber.model.ctc is not None:
            partial = partial_with(transcriber)
        if transcriber is not None:  # never longer than the encoder's window
            max_utterance = min(
                max_utterance or transcriber.max_window_seconds, transcriber.window_seconds
            )
        elif max_utterance is None:
            max_utterance = 28.0
        if max_utterance < 1.0:
            raise ValueError(f"max_utterance={max_utterance}: expected at least 1 s")
        self._decode = decode
        self._partial_fn = partial or None
        self.max_utterance = max_utterance
        self.turn_detection = turn_detection
        self.configure(threshold, min_silence, prefix_padding, partial_interval, min_speech)
        self._detector = detector
        self._on_ready = on_ready
        self._lock = threading.RLock()
        self._rate: int | None = None
        self._resampler: soxr.ResampleStream | None = None
        self._buf = np.zeros(0, dtype=np.float32)  # 16 kHz audio from sample `_base` on
        self._base = 0
        self._total = 0  # samples received (16 kHz)
        self._pos = 0  # samples the VAD has scored: whole frames from the start
        self._floor = 0  # a new utterance's audio starts here or later
        self._utt: _Utterance | None = None
        self._next_index = 0
        self._out: list[Event] = []
        self._finals: collections.deque[tuple[Committed, concurrent.futures.Future]] = (
            collections.deque()
        )
        self._partial: tuple[Partial, concurrent.futures.Future] | None = None
        self._closed = False

    # ---- settings ------------------------------------------------------------------

    def configure(
        self,
        threshold: float | None = None,
        min_silence: float | None = None,
        prefix_padding: float | None = None,
        partial_interval: float | None = None,
        min_speech: float | None = None,
    ) -> None:
        """Change settings (None: keep); they apply from the next frame on."""
        values = dict(
            threshold=threshold,
            min_silence=min_silence,
            prefix_padding=prefix_padding,
            partial_interval=partial_interval,
            min_speech=min_speech,
        )
        for name, value in values.items():
            if value is None:
                continue
            ok = 0.0 < value < 1.0 if name == "threshold" else 0.0 <= value <= 30.0
            if not ok:
                expected = "in (0, 1)" if name == "threshold" else "seconds from 0 to 30"
                raise ValueError(f"{name}={value}: expected {expected}")
            setattr(self, name, float(value))

    @property
    def seconds(self) -> float:
        """Seconds of audio received so far (at 16 kHz, after resampling)."""
        return self._total / SAMPLE_RATE

    @property
    def in_utterance(self) -> bool:
        """Whether an utterance is open (speech heard and not yet committed)."""
        return self._utt is not None

    # ---- input ---------------------------------------------------------------------

    def feed(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> list[Event]:
        """Add (T,) (or (T, channels)) samples at `sample_rate`; the events now ready."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 2:
            x = x.mean(axis=1)
        if x.ndim != 1:
            raise ValueError(f"samples of shape {x.shape}: expected (T,) or (T, channels)")
        if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"sample_rate={sample_rate!r}: expected a positive integer (Hz)")
        with self._lock:
            self._check_open()
            self._append(self._resample(x, int(sample_rate)))
            self._advance()
            self._ask_partial()
            return self._collect()

    def poll(self) -> list[Event]:
        """The events that became ready since the last call (results of injected futures)."""
        with self._lock:
            return self._collect()

    def flush(self) -> list[Event]:
        """End the open utterance now, with all the audio received (OpenAI's commit)."""
        with self._lock:
            self._check_open()
            self._flush()
            return self._collect()

    def clear(self) -> None:
        """Drop the open utterance's audio: it is not decoded (OpenAI's clear)."""
        with self._lock:
            self._drop_partial()
            self._utt = None
            self._floor = self._total

    def close(self, timeout: float | None = None) -> list[Event]:
        """End the stream: the resampler's tail is added, the open utterance ends, and every
        pending decoding is waited for (up to `timeout` s each); the remaining events."""
        with self._lock:
            if self._closed:
                return self._collect()
            if self._resampler is not None:
                self._append(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
                self._resampler = None
                self._advance()
            self._flush()
            self._closed = True
            for _, future in list(self._finals):
                concurrent.futures.wait([future], timeout)
            return self._collect()

    def cancel(self) -> None:
        """Abandon the stream (its client is gone): pending decodings are cancelled."""
        with self._lock:
            self._closed = True
            self._drop_partial()
            for _, future in self._finals:
                future.cancel()
            self._finals.clear()
            self._utt = None

    def run(self, chunks: Iterable[np.ndarray], sample_rate: int = SAMPLE_RATE) -> Iterator[Event]:
        """Every event of a whole stream of `chunks`, closed at the end."""
        for chunk in chunks:
            yield from self.feed(chunk, sample_rate)
        yield from self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the stream is closed")

    # ---- audio ---------------------------------------------------------------------

    def _resample(self, x: np.ndarray, rate: int) -> np.ndarray:
        """`x` at 16 kHz; a change of rate flushes the previous rate's resampler first."""
        head = np.zeros(0, dtype=np.float32)
        if rate != self._rate:
            if self._resampler is not None:
                head = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            self._rate = rate
            self._resampler = (
                None
                if rate == SAMPLE_RATE
                else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
            )
        if self._resampler is not None:
            x = self._resampler.resample_chunk(x)
        return np.concatenate([head, x]) if head.size else x

    def _append(self, x: np.ndarray) -> None:
        if x.size:
            self._buf = np.concatenate([self._buf, x.astype(np.float32, copy=False)])
            self._total += x.size

    def _audio(self, a: int, b: int) -> np.ndarray:
        """Samples a to b (from the stream's start), a copy."""
        return self._buf[a - self._base : b - self._base].copy()

    def _trim(self) -> None:
        """Forget audio that no utterance can need any more: before the open utterance, or
        before the prefix padding of one that would start at the next frame."""
        if self._utt is not None:
            keep = self._utt.audio_start
        else:
            keep = max(self._floor, self._pos - self._samples(self.prefix_padding))
        if keep - self._base > SAMPLE_RATE:  # in steps of a second or more: few copies
            self._buf = self._buf[keep - self._base :].copy()
            self._base = keep

    @staticmethod
    def _samples(seconds: float) -> int:
        return round(seconds * SAMPLE_RATE)

    # ---- endpointing ---------------------------------------------------------------

    def _advance(self) -> None:
        """Score the new whole frames with the VAD and step through them (or, without
        turn detection, follow the audio), cutting utterances that grow too long."""
        if not self.turn_detection:
            self._pos = self._total
            if self._utt is None and self._total > self._floor:
                self._utt = self._open(self._floor, self._floor)
            while self._utt is not None and self._total - self._utt.audio_start > self._max():
                self._cut_manual()
            self._trim()
            return
        n = (self._total - self._pos) // FRAME
        if n <= 0:
            return
        if self._detector is None:
            self._detector = speech_detector()
        frames = self._audio(self._pos, self._pos + n * FRAME).reshape(n, FRAME)
        for prob in self._detector.probabilities(frames):
            self._step(float(prob))
            self._pos += FRAME
        self._trim()

    def _max(self) -> int:
        return self._samples(self.max_utterance)

    def _step(self, prob: float) -> None:
        """One VAD frame, [self._pos, self._pos + FRAME), with speech probability `prob`."""
        start, end = self._pos, self._pos + FRAME
        u = self._utt
        if u is None:
            if prob >= self.threshold:
                padded = start - self._samples(self.prefix_padding)
                audio_start = max(padded, self._floor, self._base)
                u = self._utt = self._open(start, audio_start)
                u.frames.append((start, prob))
                u.speech_end = end
                self._out.append(
                    SpeechStarted(u.index, start / SAMPLE_RATE, audio_start / SAMPLE_RATE)
                )
            return
        u.frames.append((start, prob))
        if prob >= self.threshold:
            u.silence_start, u.speech_end = None, end
        elif prob < max(self.threshold - 0.15, 0.01) and u.silence_start is None:
            u.silence_start = start
        if u.silence_start is not None and end - u.silence_start >= self._samples(self.min_silence):
            self._end(u.silence_start, end)
        elif end - u.audio_start >= self._max():
            if u.silence_start is not None:
                self._end(u.silence_start, end)
            else:
                self._cut(end)

    def _open(self, speech_start: int, audio_start: int) -> _Utterance:
        index, self._next_index = self._next_index, self._next_index + 1
        return _Utterance(index, speech_start, audio_start, speech_start, partial_at=speech_start)

    def _cut(self, end: int) -> None:
        """End the too long utterance at its least speech-like frame of the last few seconds;
        the next one starts there, with no padding (the audio is continuous)."""
        u = self._utt
        search = min(4 * SAMPLE_RATE, self._max() // 4)
        candidates = [(p, s) for s, p in u.frames if s > u.speech_start and s >= end - search]
        if not candidates:
            candidates = [(0.0, end - FRAME)]
        _, frame = min(reversed(candidates), key=lambda c: c[0])  # the latest of the lowest
        cut = frame + FRAME // 2
        rest = [(s, p) for s, p in u.frames if s > frame]
        speech_end, silence_start = u.speech_end, u.silence_start
        self._end(cut, cut)
        nxt = self._utt = self._open(cut, cut)
        nxt.frames = rest
        nxt.speech_end = max(speech_end, cut)
        nxt.silence_start = (
            silence_start if silence_start is not None and silence_start > cut else None
        )
        self._out.append(SpeechStarted(nxt.index, cut / SAMPLE_RATE, cut / SAMPLE_RATE))

    def _cut_manual(self) -> None:
        """Without turn detection: cut the too long buffer at its quietest pause."""
        u = self._utt
        audio = self._audio(u.audio_start, self._total)
        search = min(8.0, self.max_utterance / 2)
        a, b = split_points(audio, SAMPLE_RATE, self.max_utterance, search)[0]
        cut = u.audio_start + b
        self._end(cut, cut)
        self._utt = self._open(cut, cut)

    def _flush(self) -> None:
        u = self._utt
        if u is None:
            return
        if self.turn_detection:
            speech_end = u.silence_start if u.silence_start is not None else self._total
        else:
            speech_end = self._total
        self._end(speech_end, self._total)

    def _end(self, speech_end: int, audio_end: int) -> None:
        """Commit the open utterance: its audio [audio_start, audio_end) goes to decoding."""
        u = self._utt
        self._utt = None
        self._floor = audio_end
        self._drop_partial()
        if self.turn_detection:
            self._out.append(
                SpeechStopped(u.index, speech_end / SAMPLE_RATE, audio_end / SAMPLE_RATE)
            )
        committed = Committed(u.index, u.audio_start / SAMPLE_RATE, audio_end / SAMPLE_RATE)
        self._out.append(committed)
        speech = speech_end - u.speech_start
        if self.turn_detection and speech < self._samples(self.min_speech):
            future = concurrent.futures.Future()
            future.set_result("")  # a click or a cough: nothing for the model
        else:
            future = self._submit(self._decode, self._audio(u.audio_start, audio_end))
        self._finals.append((committed, future))
        self._ready()

    # ---- decoding ------------------------------------------------------------------

    def _submit(self, fn: Decode, audio: np.ndarray) -> concurrent.futures.Future:
        """`fn(audio)` as a Future (a plain result or an exception becomes a done one)."""
        try:
            result = fn(audio)
        except Exception as e:  # a refused or failed decoding fails its utterance only
            result = concurrent.futures.Future()
            result.set_exception(e)
        if not isinstance(result, concurrent.futures.Future):
            done = concurrent.futures.Future()
            done.set_result(result)
            result = done
        if self._on_ready is not None:
            result.add_done_callback(lambda _: self._on_ready())
        return result

    def _ask_partial(self) -> None:
        """Ask for a partial of the open utterance when `partial_interval` of new audio came."""
        u = self._utt
        if u is None or self._partial_fn is None or self.partial_interval <= 0:
            return
        if self._total - u.partial_at < self._samples(self.partial_interval):
            return
        end = min(self._total, u.audio_start + self._max())
        u.partial_at = self._total
        self._drop_partial()  # the older one, if still queued, is not worth decoding
        info = Partial(u.index, "", u.audio_start / SAMPLE_RATE, end / SAMPLE_RATE)
        self._partial = (info, self._submit(self._partial_fn, self._audio(u.audio_start, end)))
        self._ready()

    def _drop_partial(self) -> None:
        if self._partial is not None:
            self._partial[1].cancel()
            self._partial = None

    def _ready(self) -> None:
        """Move finished results to the outbox: Finals in order, the newest Partial."""
        while self._finals and self._finals[0][1].done():
            c, future = self._finals.popleft()
            if future.cancelled():
                continue
            error = future.exception()
            if error is not None:
                logger.warning("decoding utterance %d failed: %s", c.index, error)
                self._out.append(Final(c.index, "", c.start, c.end, str(error) or repr(error)))
            else:
                self._out.append(Final(c.index, future.result(), c.start, c.end))
        if self._partial is not None and self._partial[1].done():
            info, future = self._partial
            self._partial = None
            u = self._utt
            if future.cancelled() or u is None or u.index != info.index:
                return
            error = future.exception()
            if error is not None:
                logger.warning("partial decoding failed: %s", error)
            elif future.result() != u.partial_text:
                u.partial_text = future.result()
                self._out.append(dataclasses.replace(info, text=u.partial_text))

    def _collect(self) -> list[Event]:
        self._ready()
        out, self._out = self._out, []
        return out
