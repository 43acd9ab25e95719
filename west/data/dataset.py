"""Reading and validating data lists: jsonl (`{"key", "wav", "txt"}`, optionally "context":
a list of hotwords for that utterance) and Kaldi data dirs.

Every problem is reported with the file, the line (or key) and what was expected. `DataError`
and the `<key> <value>` reader come from west.data.kaldi, which needs no torch.
Bad utterances stop training unless the user asked to skip them; then each is warned
about and the total is counted.
"""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from west.data.audio import SAMPLE_RATE, AudioError, audio_info, load_audio, log_mel
from west.data.kaldi import DataError, read_kaldi_table, text_lines
from west.models.context import context_text

logger = logging.getLogger(__name__)

MIN_SECONDS = 0.2  # below this the encoder + projector (100 ms per token at k = 5) give ~nothing
LONG_AUDIO = ("error", "cut", "skip", "keep")  # validate(long_audio=...): see there


@dataclass
class Utterance:
    key: str
    wav: str
    txt: str | None
    source: str  # list file the utterance came from
    line: int  # 1-based line number in `source` (for Kaldi dirs: in wav.scp)
    duration: float = 0.0
    cut_seconds: float | None = None  # the audio is cut to this length (--cut_long_audio)
    context: list[str] | None = None  # its biasing list (jsonl "context"): hotwords to decode with

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line} (key {self.key})"


def _resolve(wav: str, list_file: Path) -> str:
    """Absolute paths as given; relative ones from the cwd, else from the list's folder."""
    p = Path(wav)
    if p.is_absolute() or p.exists():
        return str(p)
    return str(list_file.parent / p)


def read_jsonl(path: str | Path) -> list[Utterance]:
    path = Path(path)
    utts = []
    for n, text in text_lines(path):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(
                f'{path}:{n}: not valid JSON ({e.msg}); expected {{"key": ..., "wav": ..., "txt": ...}}'
            ) from e
        if not isinstance(obj, dict) or not isinstance(obj.get("wav"), str):
            raise DataError(
                f'{path}:{n}: no "wav" path; expected {{"wav": "/path.wav", "txt": "..."}}'
            )
        txt = obj.get("txt")
        if txt is not None and not isinstance(txt, str):
            raise DataError(f'{path}:{n}: "txt" must be a string, got {type(txt).__name__}')
        context = obj.get("context")
        if context is not None and (
            not isinstance(context, list) or not all(isinstance(w, str) for w in context)
        ):
            raise DataError(
                f'{path}:{n}: "context" must be a list of strings (hotwords), got {context!r}'
            )
        key = obj.get("key") or Path(obj["wav"]).stem
        utts.append(
            Utterance(str(key), _resolve(obj["wav"], path), txt, str(path), n, context=context)
        )
    return utts


def read_kaldi_dir(path: str | Path) -> list[Utterance]:
    """`wav.scp` + optional `text` from a Kaldi data dir (pipes in wav.scp are not supported)."""
    path = Path(path)
    scp = path / "wav.scp"
    if not scp.is_file():
        raise DataError(f"{path}: no wav.scp; expected a Kaldi data dir (wav.scp, text)")
    wavs = read_kaldi_table(scp)
    texts = (
        read_kaldi_table(path / "text", allow_empty_value=True)
        if (path / "text").is_file()
        else None
    )
    utts = []
    for key, (n, wav) in wavs.items():
        if wav.endswith("|"):
            raise DataError(f"{scp}:{n}: pipe commands are not supported; expected a file path")
        txt = None if texts is None else texts.get(key, (0, None))[1]
        utts.append(Utterance(key, _resolve(wav, scp), txt, str(scp), n))
    if texts is not None:
        orphans = sorted(set(texts) - set(wavs))
        if orphans:
            logger.warning(
                "%s: %d transcripts have no audio in wav.scp, e.g. %s",
                path / "text",
                len(orphans),
                orphans[:3],
            )
    return utts


def read_data(paths: str) -> list[Utterance]:
    """Comma-separated jsonl files and/or Kaldi data dirs."""
    utts: list[Utterance] = []
    for p in (s.strip() for s in paths.split(",") if s.strip()):
        if Path(p).is_dir():
            utts.extend(read_kaldi_dir(p))
        elif Path(p).is_file():
            utts.extend(read_jsonl(p))
        else:
            raise DataError(
                f"{p}: no such file or directory; expected a jsonl file or a Kaldi data dir"
            )
    return utts


def validate(
    utts: list[Utterance],
    max_seconds: float = 30.0,
    need_text: bool = True,
    tokenizer=None,
    max_tokens: int | None = None,
    skip_bad: bool = False,
    speech_tokens_per_second: float = 0.0,
    fixed_speech_seconds: float | None = None,
    long_audio: str = "error",
    cut_long: bool = False,
) -> list[Utterance]:
    """Check every utterance; return the good ones (filling `duration`).

    A transcript may have at most `max_tokens` tokens minus the speech tokens of its own
    audio (`speech_tokens_per_second` x its duration, or x `fixed_speech_seconds`).

    Audio longer than `max_seconds`, by `long_audio`: "error" is a problem like any other;
    "cut" keeps its first `max_seconds` (warned); "skip" leaves it out (warned, counted);
    "keep" keeps it whole, for a decoder that splits it (west.decode.recognize).
    `cut_long=True` is the older spelling of `long_audio="cut"`.

    Raises DataError listing every problem unless `skip_bad`, which warns about each
    and logs the count.
    """
    if cut_long:
        long_audio = "cut"
    if long_audio not in LONG_AUDIO:
        raise ValueError(f"long_audio={long_audio!r}; expected one of {LONG_AUDIO}")
    problems: list[str] = []
    good: list[Utterance] = []
    too_long: list[str] = []
    seen: dict[str, str] = {}
    for u in utts:
        if u.key in seen:
            problems.append(f"{u.where}: duplicate key, first at {seen[u.key]}")
            continue
        seen[u.key] = f"{u.source}:{u.line}"
        try:
            u.duration = audio_info(u.wav)[0]
        except AudioError as e:
            problems.append(f"{u.where}: {e}")
            continue
        if u.duration < MIN_SECONDS:
            problems.append(
                f"{u.where}: {u.wav} lasts {u.duration:.3f} s, too short to give one speech "
                f"token (at least {MIN_SECONDS} s expected)"
            )
            continue
        if u.duration > max_seconds and long_audio == "cut":
            logger.warning(
                "%s: %s lasts %.2f s: cut to %.0f s as asked (--cut_long_audio)",
                u.where,
                u.wav,
                u.duration,
                max_seconds,
            )
            u.duration = u.cut_seconds = max_seconds
        if u.duration > max_seconds and long_audio == "skip":
            logger.warning(
                "%s: %s lasts %.2f s, longer than the %.0f s the encoder accepts: left out",
                u.where,
                u.wav,
                u.duration,
                max_seconds,
            )
            too_long.append(u.key)
            continue
        if u.duration > max_seconds and long_audio == "error":
            problems.append(
                f"{u.where}: {u.wav} lasts {u.duration:.2f} s, longer than the {max_seconds:.0f} s "
                "the encoder accepts; split it or raise --max_speech_seconds only for a longer encoder"
            )
            continue
        if need_text:
            if u.txt is None or not u.txt.strip():
                problems.append(
                    f"{u.where}: empty transcript; expected the words spoken in {u.wav}"
                )
                continue
            if tokenizer is not None and max_tokens is not None:
                n = len(tokenizer(u.txt, add_special_tokens=False).input_ids)
                seconds = fixed_speech_seconds or u.duration
                budget = max_tokens - math.ceil(seconds * speech_tokens_per_second)
                if n > budget:
                    problems.append(
                        f"{u.where}: transcript is {n} tokens, more than the {budget} "
                        "that fit in --model_max_length with the prompt and speech"
                    )
                    continue
        good.append(u)
    if problems:
        if not skip_bad:
            shown = "\n  ".join(problems[:20])
            more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
            raise DataError(
                f"{len(problems)} bad utterance(s) of {len(utts)}:\n  {shown}{more}\n"
                "Fix them, or pass --skip_bad_data to skip them."
            )
        for p in problems:
            logger.warning("skipping %s", p)
        logger.warning("skipped %d bad utterance(s) of %d", len(problems), len(utts))
    if too_long:
        logger.warning(
            "left out %d utterance(s) of %d longer than %.0f s (%.1f%%)",
            len(too_long),
            len(utts),
            max_seconds,
            100 * len(too_long) / len(utts),
        )
    return good


class SpeechDataset(torch.utils.data.Dataset):
    """Utterances -> {"key", "mel" (n_mels, T), "text_ids"} computed on the fly; with a
    `context` sampler (context_conf), also "context_ids": a biasing list's prompt tokens;
    "context": the utterance's own hotwords, when its data list gives them.

    With `cache` (west.data.cache.EncoderCache, filled beforehand) items hold the frozen
    encoder's frames {"enc" (T', D)} read from it instead of "mel": no audio is loaded.
    """

    def __init__(
        self,
        utts: list[Utterance],
        n_mels: int,
        tokenizer=None,
        pad_to_30s: bool = False,
        cache=None,
        context=None,
    ):
        self.utts = utts
        self.n_mels = n_mels
        self.tokenizer = tokenizer
        self.pad_to_30s = pad_to_30s
        self.cache = cache
        self.context = context  # west.models.context.ContextSampler: training lists
        self._draws = [0] * len(utts) if context is not None else []

    def __len__(self) -> int:
        return len(self.utts)

    @property
    def lengths(self) -> list[float]:
        return [u.duration for u in self.utts]

    def __getitem__(self, i: int) -> dict:
        u = self.utts[i]
        if self.cache is not None:
            item = {"key": u.key, "enc": self.cache.load(u)}
        else:
            try:
                audio = load_audio(u.wav)
            except AudioError as e:
                raise AudioError(f"{u.where}: {e}") from e
            if u.cut_seconds is not None:
                audio = audio[: int(u.cut_seconds * SAMPLE_RATE)]
            item = {"key": u.key, "mel": log_mel(audio, self.n_mels, self.pad_to_30s)}
        if self.tokenizer is not None and u.txt is not None:
            item["text_ids"] = self.tokenizer(u.txt, add_special_tokens=False).input_ids
            if self.context is not None:
                item["context_ids"] = self._context_ids(i, u.txt)
        if u.context is not None:
            item["context"] = u.context
        return item

    def _context_ids(self, i: int, txt: str) -> list[int]:
        """A fresh biasing list for utterance i each time it is read, as prompt tokens
        (seeded by the sampler's seed, the index and how often it was read)."""
        self._draws[i] += 1
        rng = random.Random(f"{self.context.seed}:{i}:{self._draws[i]}")
        text = context_text(self.context.sample(txt, rng), self.context.conf.template)
        return self.tokenizer(text, add_special_tokens=False).input_ids if text else []
