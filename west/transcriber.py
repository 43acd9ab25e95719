"""Transcribing recordings of any length: windows cut at pauses, decoded in batches.

The window machinery is public so that a caller with its own batching (west.serve) cuts
and decodes exactly as the Transcriber does: `cut_windows` turns one recording into
Windows, `Transcriber.decode_windows` decodes a list of sample arrays as one batch and
`Transcriber.fill` stores a window's result in its Segment.

Word timestamps (`word_timestamps=True`, a model with a CTC branch only): each window's
transcript is force-aligned to the CTC branch's posteriors (west.timestamps) and its
Segment's `words` filled. Off by default: the default decode keeps no posteriors and
aligns nothing, so it costs what it did without them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator, Sequence
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
    (T,) at 16 kHz, a view into the recording. A silent window is never decoded: it would
    only invite a hallucination, so its text stays empty."""

    segment: Segment
    samples: np.ndarray
    silent: bool


def cut_windows(
    audio: np.ndarray, max_window_seconds: float = 28.0, search_seconds: float = 8.0
) -> list[Window]:
    """Cut (T,) 16 kHz `audio` at pauses into windows of at most `max_window_seconds`
    (west.data.segment.split_points); together they cover the whole recording in order."""
    windows = []
    for a, b in split_points(audio, SAMPLE_RATE, max_window_seconds, search_seconds):
        samples = audio[a:b]
        silent = float(np.abs(samples).max()) < SILENCE_PEAK
        windows.append(Window(Segment(a / SAMPLE_RATE, b / SAMPLE_RATE, ""), samples, silent))
    return windows


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
    ):
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation {segmentation!r}: expected one of {SEGMENTATIONS}")
        self.segmentation = segmentation
        self.model = model
        self.decoding = model.config.decode.resolve(
            model.ctc is not None,
            num_beams=num_beams,
            max_new_tokens=max_new_tokens,
            engine=engine,
            ctc_weight=ctc_weight,
            max_tokens_per_second=max_tokens_per_second,
        )
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
        them (`segmentation` "vad", see utterances)."""
        if self.segmentation == "vad":
            return self.utterances(audio)
        return cut_windows(audio, self.max_window_seconds, self.search_seconds)

    def utterances(self, audio: np.ndarray) -> list[Window]:
        """(T,) 16 kHz `audio` cut into utterances exactly as west.streaming.Stream cuts a
        live stream (Silero VAD; at most `max_window_seconds` each): decoded with
        decode_windows, they give the texts a live stream's finals give. The audio between
        utterances is left out; a burst too short to be speech is a silent window."""
        from west.streaming import Final, Stream

        stream = Stream(self, decode=lambda samples: "speech", partial=False)
        windows = []
        for e in stream.feed(audio, SAMPLE_RATE) + stream.close():
            if isinstance(e, Final):
                a, b = round(e.start * SAMPLE_RATE), round(e.end * SAMPLE_RATE)
                samples = audio[a:b]
                silent = e.text == "" or not samples.size or np.abs(samples).max() < SILENCE_PEAK
                windows.append(Window(Segment(e.start, e.end, ""), samples, bool(silent)))
        return windows

    def decode_windows(
        self,
        samples: Sequence[np.ndarray],
        num_beams: int | None = None,
        max_new_tokens: int | None = None,
        hypotheses: bool = False,
    ) -> list[str] | list[Hypothesis]:
        """Decode a list of (T_i,) 16 kHz sample arrays, each at most `window_seconds`
        long, as one batch; one text per array, whitespace collapsed (with `hypotheses`, a
        west.models.speech_llm.Hypothesis: tokens and CTC posteriors too). The batched
        search gives each array the text it would get alone."""
        mel, mel_lens = self.features(samples)
        found = self.model.generate(
            mel=mel,
            mel_lens=mel_lens,
            num_beams=num_beams or self.num_beams,
            max_new_tokens=max_new_tokens or self.max_new_tokens,
            engine=self.engine,
            ctc_weight=self.ctc_weight,
            max_tokens_per_second=self.decoding.max_tokens_per_second,
            return_hypotheses=hypotheses,
        )
        if not hypotheses:
            return [" ".join(t.split()) for t in found]
        for h in found:
            h.text = " ".join(h.text.split())
        return found

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
    ):
        """Transcribe one input or a list of them.

        audio: a path (wav, flac; any rate and channel count), a (T,) or (T, C) array or
            tensor of samples at `sample_rate`, or a list of these.
        Returns a str for one input and a list of str (same order) for a list; with
        `return_segments`, a list of Segment (start, end, text) per input instead. With
        `word_timestamps` (a model with a CTC branch; ValueError otherwise), Segments
        whatever `return_segments` says, each with its `words` (start, end, confidence).
        With `skip_bad`, a bad input (missing, not audio, silent) is warned about and gives
        None instead of raising AudioError.
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
    ) -> Iterator[Transcript]:
        """Yield a Transcript per input, in order, decoding `group_size` inputs at a time.

        Only one group's audio is held in memory. `names` label the inputs in results and
        error messages (default: the path, or `<array i>`). `progress`: a bar counting
        inputs; None shows it for 10 inputs or more when stderr is a terminal.
        `word_timestamps`: fill each Segment's `words` (Transcript.words: all of them);
        ValueError, before anything is decoded, for a model without a CTC branch.
        """
        if word_timestamps:
            self.check_word_timestamps()
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
                    audios, batch_size, num_beams, max_new_tokens, names[g:], bar, word_timestamps
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
    ) -> list[list[Segment]]:
        """Cut each recording into windows, then decode the windows of all of them together
        (with `words`, their word timestamps too)."""
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
                [w.samples for w, _ in chunk], num_beams, max_new_tokens, hypotheses=words
            )
            for (w, i), result in zip(chunk, found):
                self.fill(w, result)
                left[i] -= 1
                if left[i] == 0:
                    bar.update(1)
        return segments


def _default_name(x, i: int) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else f"<array {i}>"
