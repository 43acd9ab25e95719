"""Transcribing recordings of any length: windows cut at pauses, decoded in batches.

The window machinery is public so that a caller with its own batching (west.serve) cuts
and decodes exactly as the Transcriber does: `cut_windows` turns one recording into
Windows, `Transcriber.decode_windows` decodes a list of sample arrays as one batch and
`Transcriber.fill` stores a window's result in its Segment.

Windows are cut as the audio arrives (`Transcriber.stream_windows`, `cut_windows_from`):
a long upload is cut from its chunks, never whole in memory, into exactly the windows that
`Transcriber.windows` gives the whole recording.

No speech, no text (`speech_only`, on by default): a window in which the voice activity
detector that live transcription uses (west.streaming, Silero VAD) hears no speech is
silent, so noise and music are never handed to the LLM, which would invent words for them.

Word timestamps (`word_timestamps=True`, a model with a CTC branch only): each window's
transcript is force-aligned to the CTC branch's posteriors (west.timestamps) and its
Segment's `words` filled. Off by default: the default decode keeps no posteriors and
aligns nothing, so it costs what it did without them.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from west.data.audio import (
    HOP_LENGTH,
    SAMPLE_RATE,
    SILENCE_PEAK,
    AudioError,
    load_audio,
    log_mel,
    prepare_audio,
)
from west.data.batching import collate
from west.data.segment import split_points
from west.data.vad import FRAME, SileroDetector, speech_detector
from west.models.context import read_hotwords, routes
from west.models.speech_llm import Hypothesis, SpeechLLM
from west.timestamps import Word, word_timestamps

logger = logging.getLogger(__name__)


SEGMENTATIONS = ("pauses", "vad")  # how a recording is cut into windows (Transcriber.windows)


@dataclasses.dataclass
class Segment:
    """A piece of a recording decoded on its own: times in seconds from its start. `words`:
    its words with their times (west.timestamps.Word), when word timestamps were asked for
    (None otherwise; [] for a window with nothing said)."""

    start: float
    end: float
    text: str
    words: list[Word] | None = None


@dataclasses.dataclass
class Transcript:
    """One input's result; `error` is set (and `text` empty) when it was skipped as bad."""

    name: str
    text: str
    segments: list[Segment]
    duration: float = 0.0
    error: str | None = None

    @property
    def words(self) -> list[Word] | None:
        """Every word of the recording, in order; None when word timestamps were not asked
        for (see Segment)."""
        if all(s.words is None for s in self.segments):
            return None
        return [w for s in self.segments for w in s.words or []]


@dataclasses.dataclass
class Window:
    """One window of a recording: its Segment (text filled in once decoded) and its samples
    (T,) at 16 kHz, an array of its own (a copy, so that a window kept for decoding keeps
    no more of the recording alive). A silent window (no sound, or with `speech_only` no
    speech) is never decoded: it would only invite a hallucination, so its text stays
    empty."""

    segment: Segment
    samples: np.ndarray
    silent: bool


# Audio past a window's end that split_points looks at to place its cut: min_last_seconds
# (1 s) after it, half its smoothing (0.1 s) and a frame; with more, the cut cannot change.
LOOKAHEAD_SECONDS = 2.0


def cut_windows(
    audio: np.ndarray, max_window_seconds: float = 28.0, search_seconds: float = 8.0
) -> list[Window]:
    """Cut (T,) 16 kHz `audio` at pauses into windows of at most `max_window_seconds`
    (west.data.segment.split_points); together they cover the whole recording in order.
    A window with no sound (peak below SILENCE_PEAK) is silent."""
    return list(cut_windows_from([audio], max_window_seconds, search_seconds))


def cut_windows_from(
    chunks: Iterable[np.ndarray], max_window_seconds: float = 28.0, search_seconds: float = 8.0
) -> Iterator[Window]:
    """cut_windows of a recording given as (T_i,) 16 kHz chunks in order: the same windows
    however the recording is cut into chunks, each yielded once its end is known.

    Each cut is placed by split_points on the audio from its window's start on, at most
    `max_window_seconds` + LOOKAHEAD_SECONDS of it: it depends on nothing before the window
    nor far after it, so only about a window plus a chunk of audio is ever held."""
    max_len = int(max_window_seconds * SAMPLE_RATE)
    need = max_len + round(LOOKAHEAD_SECONDS * SAMPLE_RATE)
    pieces, held, start = [np.zeros(0, np.float32)], 0, 0  # audio from `start` on, uncut
    for chunk in _and_end(chunks):
        last = chunk is None
        if not last:
            pieces = [*pieces, chunk] if held else [chunk]
            held += len(chunk)
        if held < need and not last:
            continue
        buf = pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        while len(buf) >= need or (last and len(buf) > max_len):
            cut = split_points(buf[:need], SAMPLE_RATE, max_window_seconds, search_seconds)[0][1]
            yield _pause_window(buf[:cut], start)
            buf, start = buf[cut:], start + cut
        pieces, held = [buf], len(buf)
    yield _pause_window(buf, start)


def _checked(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The chunks as float32 (T_i,) arrays."""
    for i, chunk in enumerate(chunks):
        chunk = np.asarray(chunk, dtype=np.float32)
        if chunk.ndim != 1:
            raise ValueError(f"chunk {i} of shape {chunk.shape}: expected (T,) samples at 16 kHz")
        yield chunk


def _and_end(chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
    """The chunks as float32 (T_i,) arrays, then None for the end of the recording."""
    yield from _checked(chunks)
    yield None


def _pause_window(samples: np.ndarray, start: int) -> Window:
    """The window of `samples` (copied) that starts `start` samples into its recording."""
    silent = not samples.size or float(np.abs(samples).max()) < SILENCE_PEAK
    segment = Segment(start / SAMPLE_RATE, (start + len(samples)) / SAMPLE_RATE, "")
    return Window(segment, samples.copy(), silent)


_told_no_silero = False


def _silero_available() -> bool:
    """Whether the VAD is Silero's; if not (the energy fallback, which takes noise for
    speech), says once that speech_only cannot work and windows with sound are decoded."""
    global _told_no_silero
    if isinstance(speech_detector(), SileroDetector):
        return True
    if not _told_no_silero:
        _told_no_silero = True
        logger.warning(
            "speech_only: without Silero VAD (pip install silero-vad) noise cannot be told "
            "from speech, so every window with sound is decoded, noise included"
        )
    return False


class SpeechSpans:
    """Where live transcription hears speech in one recording, followed as it arrives.

    `stream`, a west.streaming.Stream that only cuts (Transcriber._endpointer), runs once
    over the whole recording, as it would live: Silero VAD hears each moment with what came
    before it (it tells a chord from a vowel by the music around it), and an utterance
    counts as it does live, when it would be decoded (its `threshold`, `min_speech`).
    `spans` holds the speech (onset to end, in samples) of each such utterance."""

    def __init__(self, stream):
        self.stream = stream
        self.spans: list[tuple[int, int]] = []
        self._open: dict[int, list[int]] = {}  # an utterance not yet over: [onset, end]
        self._known = 0  # every utterance with its onset before this sample is over

    def follow(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The (T_i,) 16 kHz chunks, each fed to the stream as it passes; after the last,
        the stream is closed."""
        for chunk in chunks:
            self._take(self.stream.feed(chunk, SAMPLE_RATE))
            # A next onset is in a frame not yet scored: less than a frame from the end.
            scored = round(self.stream.seconds * SAMPLE_RATE) - FRAME
            self._known = min([onset for onset, _ in self._open.values()] + [scored])
            yield chunk
        self._take(self.stream.close())
        self._known = np.iinfo(np.int64).max

    def heard_in(self, window: Window) -> bool | None:
        """Whether the speech of an utterance lies in `window`; None while not yet known.
        Windows are asked about in order: spans before this one are forgotten."""
        a = round(window.segment.start * SAMPLE_RATE)
        b = round(window.segment.end * SAMPLE_RATE)
        if self._known < b:
            return None
        self.spans = [(s, e) for s, e in self.spans if e > a]
        return any(s < b for s, _ in self.spans)

    def _take(self, events) -> None:
        from west.streaming import Final, SpeechStarted, SpeechStopped

        for e in events:
            if isinstance(e, SpeechStarted):
                self._open[e.index] = [round(e.start * SAMPLE_RATE)] * 2
            elif isinstance(e, SpeechStopped):
                self._open[e.index][1] = round(e.end * SAMPLE_RATE)
            elif isinstance(e, Final):
                onset, end = self._open.pop(e.index)
                if e.text:  # decoded live, not a click too short to be speech
                    self.spans.append((onset, end))


def join_texts(segments: Sequence[Segment]) -> str:
    """A recording's text: its windows' texts, empty ones left out, joined with spaces."""
    return " ".join(s.text for s in segments if s.text)


class Transcriber:
    """A trained SpeechLLM that turns recordings of any length into text.

    Recordings longer than the encoder's window are cut at pauses into windows of at
    most `max_window_seconds` (west.data.segment); all windows of a group of inputs are
    decoded together, longest first, `batch_size` at a time, and each input's window
    texts are joined with spaces.

    Decoding settings left as None are the model's own (its `decode_conf`, which
    west-train saves from its recipe's `decode:` mapping; west.config.DecodeConf), so a
    model decodes outside its recipe as it did inside: `self.decoding` holds them.

    speech_only (segmentation "pauses"; on by default): a window in which the voice
    activity detector of live transcription finds no speech is silent, never decoded.
    Given noise or music, an LLM does not answer with nothing: it invents words (25 min of
    white noise came back as "dear dear dear ..."). The test is live transcription's own:
    west.streaming.Stream's endpointing (Silero VAD, its `threshold` and `min_speech`)
    runs once over the recording, and a window is speech when the speech of an utterance
    that a live stream would decode lies in it (SpeechSpans). Silero costs about 30 s of
    one CPU core per hour of audio (AMD EPYC, one thread; under 1% of real time). Only
    Silero tells speech from noise: with the energy fallback (silero-vad not installed)
    every window with sound is decoded, as with speech_only off, and a warning says so
    once. Segmentation "vad" cuts utterances with that very detector: no second test.
    """

    def __init__(
        self,
        model: SpeechLLM,
        num_beams: int | None = None,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        max_window_seconds: float = 28.0,
        search_seconds: float = 8.0,
        model_dir: str | Path | None = None,
        engine: str | None = None,
        ctc_weight: float | None = None,
        max_tokens_per_second: float | None = None,
        segmentation: str = "pauses",
        speech_only: bool = True,
        hotwords: str | os.PathLike | Sequence[str] | None = None,
        hotword_bonus: float | None = None,
        context_route: str = "auto",
    ):
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation {segmentation!r}: expected one of {SEGMENTATIONS}")
        self.segmentation = segmentation
        self.speech_only = speech_only
        self.model = model
        self.decoding = model.config.decode.resolve(
            model.ctc is not None,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            engine=engine,
            ctc_weight=ctc_weight,
            max_tokens_per_second=max_tokens_per_second,
            hotword_bonus=hotword_bonus,
        )
        routes(context_route, False, 0.0)  # a bad route fails here, not at the first decode
        self.hotwords = read_hotwords(hotwords)
        self.context_route = context_route
        self.engine = self.decoding.engine
        self.ctc_weight = self.decoding.ctc_weight
        self.num_beams = self.decoding.num_beams
        self.max_new_tokens = self.decoding.max_new_tokens
        self.batch_size = batch_size
        self.max_window_seconds = min(max_window_seconds, self.window_seconds)
        self.search_seconds = min(search_seconds, self.max_window_seconds)
        self.model_dir = model_dir

    @property
    def window_seconds(self) -> float:
        """Longest audio the encoder accepts (30 s for Whisper)."""
        dims = getattr(self.model.encoder, "dims", None)
        if dims is None:
            return 30.0
        return dims.n_ctx * 2 * HOP_LENGTH / SAMPLE_RATE

    @property
    def device(self) -> torch.device:
        return next(self.model.projector.parameters()).device

    def __repr__(self) -> str:
        c = self.model.config
        d = self.decoding
        return (
            f"Transcriber(model_dir={str(self.model_dir)!r}, encoder={c.whisper_model_name_or_path!r}, "
            f"llm={c.llm_model_name_or_path!r}, device={str(self.device)!r}, "
            f"num_beams={d.num_beams}, ctc_weight={d.ctc_weight:g}, engine={d.engine!r}, "
            f"max_new_tokens={d.max_new_tokens}, max_tokens_per_second={d.max_tokens_per_second:g})"
        )

    def windows(self, audio: np.ndarray) -> list[Window]:
        """(T,) 16 kHz `audio` cut into this Transcriber's windows: at pauses into windows of
        at most `max_window_seconds` that cover it all (`segmentation` "pauses", see
        cut_windows), or into utterances where a person pauses, as live transcription cuts
        them (`segmentation` "vad", see utterances). With `speech_only`, windows without
        speech are silent (see the class docstring)."""
        return list(self.stream_windows([audio]))

    def stream_windows(self, chunks: Iterable[np.ndarray]) -> Iterator[Window]:
        """The windows of one recording given as (T_i,) 16 kHz chunks in order, each as soon
        as it is known: exactly `windows(np.concatenate(chunks))` (times, samples, silent
        flags), holding only a window or two (with `speech_only`, one waits for the end of
        an utterance that starts in it) plus a chunk of audio, so a long upload is never
        whole in memory. Each window's samples are its own copy."""
        if self.segmentation == "vad":
            yield from self._utterances_from(chunks)
            return
        if not (self.speech_only and _silero_available()):
            yield from cut_windows_from(chunks, self.max_window_seconds, self.search_seconds)
            return
        # A window waits for its flag until every utterance that starts in it is over:
        # at most an utterance (max_window_seconds) after its end.
        speech = SpeechSpans(self._endpointer())
        heard = speech.follow(_checked(chunks))
        pending: collections.deque[Window] = collections.deque()
        for w in cut_windows_from(heard, self.max_window_seconds, self.search_seconds):
            pending.append(w)
            while pending and (found := speech.heard_in(pending[0])) is not None:
                w = pending.popleft()
                w.silent = w.silent or not found
                yield w
        for w in pending:  # the recording is over: all is known
            w.silent = w.silent or not speech.heard_in(w)
            yield w

    def utterances(self, audio: np.ndarray) -> list[Window]:
        """(T,) 16 kHz `audio` cut into utterances exactly as west.streaming.Stream cuts a
        live stream (Silero VAD; at most `max_window_seconds` each): decoded with
        decode_windows, they give the texts a live stream's finals give. The audio between
        utterances is left out; a burst too short to be speech is a silent window."""
        return list(self._utterances_from([audio]))

    def _endpointer(self):
        """A west.streaming.Stream that only cuts: an utterance it would decode gets the
        text "speech", one too short to be speech (min_speech) the empty text."""
        from west.streaming import Stream

        return Stream(self, decode=lambda samples: "speech", partial=False)

    def _utterances_from(self, chunks: Iterable[np.ndarray]) -> Iterator[Window]:
        """utterances() of a recording given in chunks, holding only the audio that an
        utterance may still need: the open one's, else the prefix padding of a next one."""
        from west.streaming import Final, SpeechStarted

        stream = self._endpointer()
        buf, base = np.zeros(0, np.float32), 0  # the audio from sample `base` on
        opened = last_end = 0  # the open utterance's audio start; the last one's end
        for chunk in _and_end(chunks):
            if chunk is None:
                events = stream.close()
            else:
                buf = np.concatenate([buf, chunk]) if buf.size else chunk
                events = stream.feed(chunk, SAMPLE_RATE)
            for e in events:
                if isinstance(e, SpeechStarted):
                    opened = round(e.audio_start * SAMPLE_RATE)
                elif isinstance(e, Final):
                    a, last_end = round(e.start * SAMPLE_RATE), round(e.end * SAMPLE_RATE)
                    samples = buf[a - base : last_end - base].copy()
                    silent = not e.text or not samples.size or np.abs(samples).max() < SILENCE_PEAK
                    yield Window(Segment(e.start, e.end, ""), samples, bool(silent))
            if stream.in_utterance:
                keep = opened
            else:  # a next onset lies in a frame not yet scored: less than a frame from the end
                padding = round(stream.prefix_padding * SAMPLE_RATE)
                keep = max(last_end, base + len(buf) - FRAME - padding)
            if keep > base:
                buf, base = buf[keep - base :], keep

    def decode_windows(
        self,
        samples: Sequence[np.ndarray],
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
        hypotheses: bool = False,
        step_hook: Callable[[], None] | None = None,
        context: Sequence[Sequence[str]] | None = None,
    ) -> list[str] | list[Hypothesis]:
        """Decode a list of (T_i,) 16 kHz sample arrays, each at most `window_seconds`
        long, as one batch; one text per array, whitespace collapsed (with `hypotheses`, a
        west.models.speech_llm.Hypothesis: tokens and CTC posteriors too). The batched
        search gives each array the text it would get alone. `step_hook`: called between
        two decoding steps (SpeechLLM.generate). `context`: each array's hotwords, besides
        this Transcriber's own (`hotwords`)."""
        mel, mel_lens = self.features(samples)
        lists = [merge_hotwords(self.hotwords, c) for c in (context or [[]] * len(samples))]
        found = self.model.generate(
            mel=mel,
            mel_lens=mel_lens,
            num_beams=num_beams or self.num_beams,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            engine=self.engine,
            ctc_weight=self.ctc_weight,
            max_tokens_per_second=self.decoding.max_tokens_per_second,
            return_hypotheses=hypotheses,
            step_hook=step_hook,
            context=lists,
            hotword_bonus=self.decoding.hotword_bonus,
            context_route=self.context_route,
            hotword_floor=self.decoding.hotword_floor,
            hotword_gate=self.decoding.hotword_gate,
        )
        if not hypotheses:
            return [" ".join(t.split()) for t in found]
        for h in found:
            h.text = " ".join(h.text.split())
        return found

    def check_hotwords(self, words: Sequence[str]) -> None:
        """ValueError, saying why, when these hotwords (with the Transcriber's own) cannot
        be decoded: a list too long for the prompt (context_conf max_tokens)."""
        in_prompt, _ = routes(
            self.context_route, self.model.config.context.trained, self.decoding.hotword_bonus
        )
        if in_prompt:
            self.model.context_ids(merge_hotwords(self.hotwords, words))

    @property
    def has_word_timestamps(self) -> bool:
        """Whether the model can time words: it has a CTC branch."""
        return self.model.ctc is not None

    def check_word_timestamps(self) -> None:
        """ValueError, saying why, unless the model can time words."""
        if not self.has_word_timestamps:
            where = f"{self.model_dir}: " if self.model_dir else ""
            raise ValueError(
                f"{where}this model has no CTC branch (ctc_conf weight 0), so it has only "
                "segment times (the windows a recording is cut into), no word timestamps"
            )

    def fill(self, window: Window, result: str | Hypothesis) -> None:
        """Store one decoded window's result (decode_windows') in its Segment: the text,
        and for a Hypothesis with CTC posteriors its words too (`words`)."""
        segment = window.segment
        if isinstance(result, str):
            segment.text = result
            return
        segment.text = result.text
        if result.ctc_log_probs is not None:
            segment.words = self.words(result, segment.start, segment.end, window.samples)

    def words(
        self,
        hypothesis: Hypothesis,
        start: float = 0.0,
        end: float | None = None,
        samples: np.ndarray | None = None,
    ) -> list[Word]:
        """The words of one decoded window (a Hypothesis with CTC posteriors) with their
        times in seconds, the window spanning `start` to `end` of its recording; its (T,)
        16 kHz `samples`, if given, refine the times (west.timestamps.word_timestamps).
        ValueError for a model without a CTC branch."""
        self.check_word_timestamps()
        if hypothesis.ctc_log_probs is None:
            raise ValueError("this hypothesis has no CTC posteriors: decode with hypotheses=True")
        return word_timestamps(
            self.model.tokenizer,
            hypothesis.tokens,
            hypothesis.ctc_log_probs,
            self._token_labels(),
            hypothesis.frame_seconds,
            start,
            end,
            samples,
            SAMPLE_RATE,
        )

    def _token_labels(self) -> torch.Tensor:
        """(V, K): the CTC branch's labels of every LLM token id (CTCHead.token_labels), for
        the same V as joint decoding asks for, so a spelling branch builds its table once."""
        return self.model.ctc.token_labels(self.model.output_vocab)

    def partial_texts(self, samples: Sequence[np.ndarray]) -> list[str]:
        """The CTC branch's best path for each (T_i,) 16 kHz array, decoded as one batch:
        no LLM pass, so cheap enough to run while a person speaks (streaming's partial text).
        ValueError for a model without a CTC branch."""
        mel, mel_lens = self.features(samples)
        return [" ".join(t.split()) for t in self.model.ctc_texts(mel=mel, mel_lens=mel_lens)]

    def features(self, samples: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_mels, T) log-mel features of the arrays, zero-padded, on the model's device;
        and their lengths (B,)."""
        n_mels, pad_to_30s = self.model.encoder.n_mels, self.model.config.pad_to_30s
        batch = collate(
            [{"key": i, "mel": log_mel(x, n_mels, pad_to_30s)} for i, x in enumerate(samples)]
        )
        return batch["mel"].to(self.device), batch["mel_lens"].to(self.device)

    def transcribe(
        self,
        audio,
        sample_rate: int | None = None,
        *,
        return_segments: bool = False,
        skip_bad: bool = False,
        num_beams: int | None = None,
        batch_size: int | None = None,
        max_new_tokens: int | None = None,
        progress: bool | None = None,
        word_timestamps: bool = False,
        hotwords: str | os.PathLike | Sequence[str] | None = None,
    ):
        """Transcribe one input or a list of them.

        audio: a path (wav, flac; any rate and channel count), a (T,) or (T, C) array or
            tensor of samples at `sample_rate`, or a list of these.
        Returns a str for one input and a list of str (same order) for a list; with
        `return_segments`, a list of Segment (start, end, text) per input instead. With
        `word_timestamps` (a model with a CTC branch; ValueError otherwise), Segments
        whatever `return_segments` says, each with its `words` (start, end, confidence).
        With `skip_bad`, a bad input (missing, not audio, silent) is warned about and gives
        None instead of raising AudioError. `hotwords` (a list, a file or comma-separated
        text: west.models.context.read_hotwords): names and terms to expect in every input,
        besides the Transcriber's own.
        """
        single = isinstance(audio, (str, os.PathLike, np.ndarray, torch.Tensor))
        items = [audio] if single else list(audio)
        segments = return_segments or word_timestamps
        results = [
            None if t.error else (t.segments if segments else t.text)
            for t in self.stream(
                items,
                sample_rate,
                skip_bad=skip_bad,
                num_beams=num_beams,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                progress=progress,
                word_timestamps=word_timestamps,
                hotwords=hotwords,
            )
        ]
        return results[0] if single else results

    def stream(
        self,
        inputs: Sequence,
        sample_rate: int | None = None,
        names: Sequence[str] | None = None,
        *,
        skip_bad: bool = False,
        num_beams: int | None = None,
        batch_size: int | None = None,
        max_new_tokens: int | None = None,
        progress: bool | None = None,
        group_size: int | None = None,
        word_timestamps: bool = False,
        hotwords: str | os.PathLike | Sequence[str] | None = None,
        contexts: Sequence[Sequence[str] | None] | None = None,
    ) -> Iterator[Transcript]:
        """Yield a Transcript per input, in order, decoding `group_size` inputs at a time.

        Only one group's audio is held in memory. `names` label the inputs in results and
        error messages (default: the path, or `<array i>`). `progress`: a bar counting
        inputs; None shows it for 10 inputs or more when stderr is a terminal.
        `word_timestamps`: fill each Segment's `words` (Transcript.words: all of them);
        ValueError, before anything is decoded, for a model without a CTC branch.
        `hotwords`: expected in every input; `contexts`: each input's own (besides the
        Transcriber's `hotwords`).
        """
        if word_timestamps:
            self.check_word_timestamps()
        common = read_hotwords(hotwords)
        if contexts is not None and len(contexts) != len(inputs):
            raise ValueError(f"{len(contexts)} hotword lists for {len(inputs)} inputs")
        lists = [merge_hotwords(common, c) for c in (contexts or [None] * len(inputs))]
        batch_size = batch_size or self.batch_size
        names = (
            list(names)
            if names is not None
            else [_default_name(x, i) for i, x in enumerate(inputs)]
        )
        if len(names) != len(inputs):
            raise ValueError(f"{len(names)} names for {len(inputs)} inputs")
        group_size = group_size or max(32, 8 * batch_size)
        # Auto: shown for many inputs, and (tqdm's None) only when stderr is a terminal.
        disable = (None if len(inputs) >= 10 else True) if progress is None else not progress
        start, audio_seconds, skipped = time.perf_counter(), 0.0, 0
        with tqdm(total=len(inputs), desc="transcribe", unit="utt", disable=disable) as bar:
            for g in range(0, len(inputs), group_size):
                audios: list[np.ndarray | None] = []
                errors: list[str | None] = []
                for x, name in zip(inputs[g : g + group_size], names[g : g + group_size]):
                    try:
                        audios.append(self._load(x, sample_rate, name))
                        errors.append(None)
                    except AudioError as e:
                        if not skip_bad:
                            raise
                        logger.warning("skipping %s", e)
                        audios.append(None)
                        errors.append(str(e))
                        skipped += 1
                        bar.update(1)
                segments = self._decode_group(
                    audios,
                    batch_size,
                    num_beams,
                    max_new_tokens,
                    names[g:],
                    bar,
                    word_timestamps,
                    lists[g : g + group_size],
                )
                for i, (audio, segs) in enumerate(zip(audios, segments)):
                    duration = 0.0 if audio is None else len(audio) / SAMPLE_RATE
                    audio_seconds += duration
                    yield Transcript(names[g + i], join_texts(segs), segs, duration, errors[i])
        elapsed = time.perf_counter() - start
        logger.info(
            "transcribed %d input(s), %.1f s of audio, in %.1f s (RTF %.3f)%s",
            len(inputs) - skipped,
            audio_seconds,
            elapsed,
            elapsed / audio_seconds if audio_seconds else 0.0,
            f"; skipped {skipped} bad input(s)" if skipped else "",
        )

    def _load(self, x, sample_rate: int | None, name: str) -> np.ndarray:
        """A path or a (T,) / (T, C) array -> float32 mono 16 kHz; AudioError names the input."""
        if isinstance(x, (str, os.PathLike)):
            try:
                return load_audio(x)
            except AudioError as e:
                raise AudioError(e if name == str(x) else f"{name}: {e}") from e
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().float().numpy()
        if not isinstance(x, np.ndarray):
            raise TypeError(
                f"{name}: expected a path or an array of samples, got {type(x).__name__}"
            )
        if sample_rate is None:
            raise ValueError(f"{name}: give sample_rate= with arrays of samples")
        if x.ndim > 2 or (x.ndim == 2 and x.shape[1] > x.shape[0]):
            raise ValueError(
                f"{name}: array of shape {x.shape}; expected (T,) or (T, channels) samples "
                "(for (channels, T) pass array.T)"
            )
        return prepare_audio(x, sample_rate, name=name)

    def _decode_group(
        self,
        audios: list[np.ndarray | None],
        batch_size: int,
        num_beams: int | None,
        max_new_tokens: int | None,
        names: list[str],
        bar: tqdm,
        words: bool = False,
        lists: list[list[str]] | None = None,
    ) -> list[list[Segment]]:
        """Cut each recording into windows, then decode the windows of all of them together
        (with `words`, their word timestamps too; `lists`: each recording's hotwords)."""
        segments: list[list[Segment]] = []
        pieces: list[tuple[Window, int]] = []  # (a window to decode, its input)
        left = [0] * len(audios)  # windows still to decode, per input
        for i, audio in enumerate(audios):
            windows = [] if audio is None else self.windows(audio)
            if words:
                for w in windows:
                    w.segment.words = []  # a silent window's; decoded ones get theirs
            segments.append([w.segment for w in windows])
            if len(windows) > 1:
                logger.info(
                    "%s: %.1f s, cut at pauses into %d windows",
                    names[i],
                    len(audio) / SAMPLE_RATE,
                    len(windows),
                )
            pieces += [(w, i) for w in windows if not w.silent]
            left[i] = sum(not w.silent for w in windows)
            if audio is not None and left[i] == 0:
                bar.update(1)
        pieces.sort(key=lambda p: -len(p[0].samples))  # similar lengths together: little padding
        for k in range(0, len(pieces), batch_size):
            chunk = pieces[k : k + batch_size]
            found = self.decode_windows(
                [w.samples for w, _ in chunk],
                num_beams,
                max_new_tokens,
                hypotheses=words,
                context=[lists[i] if lists else [] for _, i in chunk],
            )
            for (w, i), result in zip(chunk, found):
                self.fill(w, result)
                left[i] -= 1
                if left[i] == 0:
                    bar.update(1)
        return segments


def merge_hotwords(*lists: Sequence[str] | None) -> list[str]:
    """The entries of these lists, in order, duplicates dropped."""
    return list(dict.fromkeys(w for words in lists if words for w in words))


def _default_name(x, i: int) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else f"<array {i}>"
