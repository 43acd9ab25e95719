"""Putting a trained model together for use: decoding data lists (one process or one shard
per torchrun rank; result files: west/results.py), transcribing files and arrays of any
length (`west.load(model_dir).transcribe(...)`). Export: west/export.py.
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

from west.config import CONFIG_NAME, ModelArguments
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
from west.data.dataset import DataError, SpeechDataset, Utterance, read_kaldi_table
from west.data.segment import split_points
from west.distributed import barrier, rank_and_world
from west.models.build import WEIGHTS_NAME, build_model
from west.models.speech_llm import SpeechLLM
from west.results import gather_parts, merge, part_path, read_done_keys

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")


def load_model(
    model_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **overrides,
) -> SpeechLLM:
    """Build a model from a checkpoint folder's `west_config.json` (plus overrides).

    `model_dir` supplies the configuration and the trained weights (`model.safetensors`);
    without it, `overrides` must name the encoder, LLM and projector weights.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    weights = overrides.get("projector_model_path")
    if model_dir is None and weights and (Path(weights).parent / CONFIG_NAME).is_file():
        # The seed's flags name the weights file; the config saved beside it fills in
        # the rest (projector size, LoRA, prompt) so those need not be repeated.
        model_dir = Path(weights).parent
    config = ModelArguments.load(model_dir) if model_dir else ModelArguments()
    if model_dir and "projector_model_path" not in overrides:
        overrides["projector_model_path"] = str(Path(model_dir) / WEIGHTS_NAME)
    template = overrides.get("chat_template", config.chat_template)
    if model_dir and template and not _is_file(template) and _is_file(Path(model_dir) / template):
        # An exported folder carries its template file and names it relative to itself.
        overrides["chat_template"] = str(Path(model_dir) / template)
    config = dataclasses.replace(config, **overrides)
    model = build_model(config, llm_dtype=dtype)
    model.projector.to(dtype)
    model.encoder.to(dtype)
    return model.to(device).eval()


def recognize(
    model: SpeechLLM,
    utts: list[Utterance],
    result_path: str | Path,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int = 200,
    num_workers: int = 0,
    ctc_weight: float = 0.0,
    *,
    engine: str = "west",
    max_speech_seconds: float = 30.0,
) -> dict[str, float]:
    """Decode `utts` into `result_path` as `key text` lines, resuming after a kill.

    Utterances are sorted by duration (longest first) so batches hold similar lengths;
    each line is written and flushed as soon as its batch is decoded. One longer than
    `max_speech_seconds` (kept by validate(long_audio="keep")) is cut at pauses into
    windows of at most min(28 s, `max_speech_seconds`) and its window texts joined.

    In a torch.distributed run (west-recognize under torchrun) rank r of N decodes every
    N-th utterance of that order into its own part file; when all are done, rank 0 merges
    them (west.results). Every rank must call this with the same arguments.
    """
    rank, world = rank_and_world()
    result_path = Path(result_path)
    if rank == 0:
        result_path.parent.mkdir(parents=True, exist_ok=True)
        # An earlier run's parts (any number of processes) count as done.
        gather_parts(result_path)
    barrier()
    done = read_done_keys(result_path)
    todo = sorted((u for u in utts if u.key not in done), key=lambda u: -u.duration)
    shard = todo[rank::world]
    out_path = result_path if world == 1 else part_path(result_path, rank)
    if world > 1:
        logger.info(
            "rank %d/%d: %d utterances, %.1f s of audio, to decode into %s (%d done before)",
            rank,
            world,
            len(shard),
            sum(u.duration for u in shard),
            out_path,
            len(done),
        )
        logger.debug("rank %d/%d keys: %s", rank, world, " ".join(u.key for u in shard))
    elif done:
        logger.info("%s: %d keys already decoded, %d to go", result_path, len(done), len(todo))
    stats = _decode(
        model,
        shard,
        out_path,
        batch_size,
        num_beams,
        max_new_tokens,
        num_workers,
        ctc_weight,
        engine,
        max_speech_seconds,
    )
    barrier()
    if rank == 0:
        lines = merge(result_path, [u.key for u in utts])
        long_keys = [u.key for u in utts if u.duration > max_speech_seconds]
        logger.info(
            "%s: %d lines for %d utterances%s",
            result_path,
            lines,
            len(utts),
            f" ({world} processes)" if world > 1 else "",
        )
        if long_keys:
            logger.info(
                "%d utterance(s) longer than %.0f s decoded in windows cut at pauses: %s%s",
                len(long_keys),
                max_speech_seconds,
                " ".join(long_keys[:10]),
                " ..." if len(long_keys) > 10 else "",
            )
    return stats


def _decode(
    model: SpeechLLM,
    utts: list[Utterance],
    out_path: Path,
    batch_size: int,
    num_beams: int,
    max_new_tokens: int,
    num_workers: int,
    ctc_weight: float,
    engine: str,
    max_speech_seconds: float,
) -> dict[str, float]:
    """Append a `key text` line per utterance to `out_path`, flushed per batch."""
    long = [u for u in utts if u.duration > max_speech_seconds]
    short = [u for u in utts if u.duration <= max_speech_seconds]
    dataset = SpeechDataset(short, model.encoder.n_mels, pad_to_30s=model.config.pad_to_30s)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate, num_workers=num_workers
    )
    device = next(model.projector.parameters()).device
    start, audio_seconds = time.perf_counter(), sum(u.duration for u in utts)
    with (
        open(out_path, "a", encoding="utf-8") as out,
        tqdm(total=len(utts), desc="decode", unit="utt", disable=None) as bar,
    ):
        if long:
            # The Transcriber's machinery: windows cut at pauses, all decoded together.
            transcriber = Transcriber(
                model,
                num_beams,
                batch_size,
                max_new_tokens,
                max_window_seconds=min(28.0, max_speech_seconds),
                engine=engine,
                ctc_weight=ctc_weight,
            )
            wavs, names = [u.wav for u in long], [u.where for u in long]
            for u, t in zip(long, transcriber.stream(wavs, names=names, progress=False)):
                out.write(f"{u.key} {t.text}\n")
                out.flush()
                bar.update(1)
        for batch in loader:
            texts = model.generate(
                mel=batch["mel"].to(device),
                mel_lens=batch["mel_lens"].to(device),
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                ctc_weight=ctc_weight,
                engine=engine,
            )
            for key, text in zip(batch["keys"], texts):
                out.write(f"{key} {' '.join(text.split())}\n")
            out.flush()
            bar.update(len(texts))
    elapsed = time.perf_counter() - start
    stats = {
        "utterances": len(utts),
        "long_utterances": len(long),
        "seconds": elapsed,
        "rtf": elapsed / audio_seconds if audio_seconds else 0.0,
    }
    logger.info(
        "decoded %d utterances in %.1f s (RTF %.3f)%s",
        len(utts),
        elapsed,
        stats["rtf"],
        f"; {len(long)} longer than {max_speech_seconds:.0f} s, in windows cut at pauses"
        if long
        else "",
    )
    return stats


def _is_file(path: str | os.PathLike) -> bool:
    """Path.is_file that says False (not OSError) for strings too long to be a path."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


# ---- transcribing files and arrays --------------------------------------------------


@dataclasses.dataclass
class Segment:
    """A piece of a recording decoded on its own: times in seconds from its start."""

    start: float
    end: float
    text: str


@dataclasses.dataclass
class Transcript:
    """One input's result; `error` is set (and `text` empty) when it was skipped as bad."""

    name: str
    text: str
    segments: list[Segment]
    duration: float = 0.0
    error: str | None = None


class Transcriber:
    """A trained SpeechLLM that turns recordings of any length into text.

    Recordings longer than the encoder's window are cut at pauses into windows of at
    most `max_window_seconds` (west.data.segment); all windows of a group of inputs are
    decoded together, longest first, `batch_size` at a time, and each input's window
    texts are joined with spaces. `engine` and `ctc_weight` go to SpeechLLM.generate.
    """

    def __init__(
        self,
        model: SpeechLLM,
        num_beams: int = 1,
        batch_size: int = 8,
        max_new_tokens: int = 200,
        max_window_seconds: float = 28.0,
        search_seconds: float = 8.0,
        model_dir: str | Path | None = None,
        engine: str = "west",
        ctc_weight: float = 0.0,
    ):
        self.model = model
        self.engine = engine
        self.ctc_weight = ctc_weight
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
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
        return (
            f"Transcriber(model_dir={str(self.model_dir)!r}, encoder={c.whisper_model_name_or_path!r}, "
            f"llm={c.llm_model_name_or_path!r}, device={str(self.device)!r})"
        )

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
    ):
        """Transcribe one input or a list of them.

        audio: a path (wav, flac; any rate and channel count), a (T,) or (T, C) array or
            tensor of samples at `sample_rate`, or a list of these.
        Returns a str for one input and a list of str (same order) for a list; with
        `return_segments`, a list of Segment (start, end, text) per input instead. With
        `skip_bad`, a bad input (missing, not audio, silent) is warned about and gives
        None instead of raising AudioError.
        """
        single = isinstance(audio, (str, os.PathLike, np.ndarray, torch.Tensor))
        items = [audio] if single else list(audio)
        results = [
            None if t.error else (t.segments if return_segments else t.text)
            for t in self.stream(
                items,
                sample_rate,
                skip_bad=skip_bad,
                num_beams=num_beams,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                progress=progress,
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
    ) -> Iterator[Transcript]:
        """Yield a Transcript per input, in order, decoding `group_size` inputs at a time.

        Only one group's audio is held in memory. `names` label the inputs in results and
        error messages (default: the path, or `<array i>`). `progress`: a bar counting
        inputs; None shows it for 10 inputs or more when stderr is a terminal.
        """
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
                    audios, batch_size, num_beams, max_new_tokens, names[g:], bar
                )
                for i, (audio, segs) in enumerate(zip(audios, segments)):
                    duration = 0.0 if audio is None else len(audio) / SAMPLE_RATE
                    audio_seconds += duration
                    text = " ".join(s.text for s in segs if s.text)
                    yield Transcript(names[g + i], text, segs, duration, errors[i])
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
    ) -> list[list[Segment]]:
        """Split each recording into windows, then decode the windows of all of them together."""
        segments: list[list[Segment]] = []
        pieces: list[tuple[Segment, int, np.ndarray]] = []  # (its segment, input, samples)
        left = [0] * len(audios)  # windows still to decode, per input
        for i, audio in enumerate(audios):
            segments.append([])
            if audio is None:
                continue
            spans = split_points(audio, SAMPLE_RATE, self.max_window_seconds, self.search_seconds)
            if len(spans) > 1:
                logger.info(
                    "%s: %.1f s, cut at pauses into %d windows",
                    names[i],
                    len(audio) / SAMPLE_RATE,
                    len(spans),
                )
            for a, b in spans:
                seg = Segment(a / SAMPLE_RATE, b / SAMPLE_RATE, "")
                segments[i].append(seg)
                # A silent window is not decoded: it would only invite a hallucination.
                if float(np.abs(audio[a:b]).max()) >= SILENCE_PEAK:
                    pieces.append((seg, i, audio[a:b]))
                    left[i] += 1
            if left[i] == 0:
                bar.update(1)
        pieces.sort(key=lambda p: -len(p[2]))  # similar lengths together: little padding
        n_mels, pad_to_30s = self.model.encoder.n_mels, self.model.config.pad_to_30s
        for k in range(0, len(pieces), batch_size):
            chunk = pieces[k : k + batch_size]
            batch = collate(
                [{"key": i, "mel": log_mel(samples, n_mels, pad_to_30s)} for _, i, samples in chunk]
            )
            texts = self.model.generate(
                mel=batch["mel"].to(self.device),
                mel_lens=batch["mel_lens"].to(self.device),
                num_beams=num_beams or self.num_beams,
                max_new_tokens=max_new_tokens or self.max_new_tokens,
                engine=self.engine,
                ctc_weight=self.ctc_weight,
            )
            for (seg, i, _), text in zip(chunk, texts):
                seg.text = " ".join(text.split())
                left[i] -= 1
                if left[i] == 0:
                    bar.update(1)
        return segments


def _default_name(x, i: int) -> str:
    return str(x) if isinstance(x, (str, os.PathLike)) else f"<array {i}>"


def load(
    model_dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
    *,
    num_beams: int = 1,
    batch_size: int = 8,
    max_new_tokens: int = 200,
    **overrides,
) -> Transcriber:
    """A Transcriber for a checkpoint or exported folder (west_config.json + model.safetensors).

    `overrides` replace saved configuration fields, e.g. `llm_model_name_or_path=` when
    the LLM lives elsewhere on this machine.
    """
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    # Fail before the slow build when the folder is not a model.
    if not Path(model_dir).is_dir():
        raise FileNotFoundError(f"{model_dir}: no such folder; expected a WeST model folder")
    if not overrides.get("projector_model_path") and not (Path(model_dir) / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{Path(model_dir) / WEIGHTS_NAME}: no such file; expected a checkpoint folder "
            "written by west-train or a folder written by west-export"
        )
    model = load_model(model_dir, device=device, dtype=dtype, **overrides)
    return Transcriber(model, num_beams, batch_size, max_new_tokens, model_dir=model_dir)


@dataclasses.dataclass
class AudioInput:
    """One recording to transcribe: the name printed with its text, and its file."""

    name: str
    path: str
    where: str  # for messages: the path, or `wav.scp:LINE (key K)`


def find_inputs(paths: Sequence[str | os.PathLike]) -> list[AudioInput]:
    """Expand audio files, folders (every wav/flac inside, recursive, sorted) and `.scp` lists.

    A file is named by its path as given; an `.scp` entry (`<key> <path>`, relative paths
    from the current folder, else from the list's folder) by its key.
    """
    found: list[AudioInput] = []
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()
            )
            if not files:
                raise DataError(f"{p}: folder holds no {'/'.join(AUDIO_SUFFIXES)} files")
            found += [AudioInput(str(f), str(f), str(f)) for f in files]
        elif p.suffix == ".scp" and p.is_file():
            for key, (n, wav) in read_kaldi_table(p).items():
                if wav.endswith("|"):
                    raise DataError(
                        f"{p}:{n}: pipe commands are not supported; expected a file path"
                    )
                path = wav if Path(wav).is_absolute() or Path(wav).exists() else str(p.parent / wav)
                found.append(AudioInput(key, path, f"{p}:{n} (key {key})"))
        else:
            found.append(AudioInput(str(p), str(p), str(p)))
    return found
