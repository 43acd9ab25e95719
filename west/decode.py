"""Decoding data lists (jsonl / Kaldi dirs) into `key text` files, resuming after a kill;
under torchrun, one shard per rank (result files: west/results.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from west.data.batching import collate
from west.data.dataset import SpeechDataset, Utterance
from west.distributed import barrier, rank_and_world
from west.models.speech_llm import SpeechLLM
from west.results import gather_parts, merge, part_path, read_done_keys
from west.transcriber import Transcriber, merge_hotwords

logger = logging.getLogger(__name__)


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
    max_tokens_per_second: float | None = None,
    hotwords: list[str] | None = None,
    hotword_bonus: float | None = None,
    context_route: str = "auto",
) -> dict[str, float]:
    """Decode `utts` into `result_path` as `key text` lines, resuming after a kill.

    Utterances are sorted by duration (longest first) so batches hold similar lengths;
    each line is written and flushed as soon as its batch is decoded. One longer than
    `max_speech_seconds` (kept by validate(long_audio="keep")) is cut at pauses into
    windows of at most min(28 s, `max_speech_seconds`) and its window texts joined.
    `max_tokens_per_second` caps each utterance's tokens by its duration (SpeechLLM.generate).
    Each utterance is decoded with `hotwords` and its own (its data list's "context");
    `hotword_bonus` (None: the model's decode_conf) and `context_route` say how
    (SpeechLLM.generate).

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
        max_tokens_per_second,
        Hotwords(
            hotwords or [],
            model.config.decode.hotword_bonus if hotword_bonus is None else hotword_bonus,
            context_route,
        ),
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


@dataclass(frozen=True)
class Hotwords:
    """What every utterance is decoded with: hotwords, the search's bonus, the route."""

    words: list[str]
    bonus: float
    route: str


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
    max_tokens_per_second: float | None,
    hotwords: Hotwords,
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
                max_tokens_per_second=max_tokens_per_second,
                hotwords=hotwords.words,
                hotword_bonus=hotwords.bonus,
                context_route=hotwords.route,
            )
            wavs, names = [u.wav for u in long], [u.where for u in long]
            contexts = [u.context for u in long]
            stream = transcriber.stream(wavs, names=names, progress=False, contexts=contexts)
            for u, t in zip(long, stream):
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
                max_tokens_per_second=max_tokens_per_second,
                context=[
                    merge_hotwords(hotwords.words, own)
                    for own in batch.get("context", [[]] * len(batch["keys"]))
                ],
                hotword_bonus=hotwords.bonus,
                context_route=hotwords.route,
                hotword_floor=model.config.decode.hotword_floor,
                hotword_gate=model.config.decode.hotword_gate,
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
