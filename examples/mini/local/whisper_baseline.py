"""Reference row: Whisper's own decoder (openai-whisper `decode`) on a test set.

    python local/whisper_baseline.py --model exp/models/whisper-tiny.en.pt \
        --data data/test/data.jsonl --beam_size 5 --result_path DIR/text

writes `key text` lines (resuming: keys already in the file are skipped) and prints the
decoding time per utterance. Every utterance is shorter than Whisper's 30 s window, so one
`whisper.decode` call per batch does what `transcribe` would do, without its temperature
fallback: greedy (--beam_size 1) or beam search, temperature 0, no timestamps.

Beam search decodes one utterance at a time: openai-whisper's batched beam search fails
(cross-attention keys are cached for the batch, not for batch x beam; openai/whisper#2197).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import whisper
from tqdm import tqdm

from west.data.audio import load_audio
from west.data.dataset import read_data


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="openai-whisper checkpoint (.pt) or name")
    p.add_argument("--data", required=True, help="data.jsonl or Kaldi data dir")
    p.add_argument("--result_path", required=True, type=Path, help="`key text` output file")
    p.add_argument("--beam_size", type=int, default=1, help="1 = greedy (default: 1)")
    p.add_argument("--batch_size", type=int, default=8, help="greedy only; beam search: 1")
    p.add_argument("--language", default="en")
    return p


def read_done(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.split(maxsplit=1)[0] for line in path.read_text().splitlines() if line.strip()}


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    utts = read_data(args.data)
    done = read_done(args.result_path)
    todo = [u for u in utts if u.key not in done]
    args.result_path.parent.mkdir(parents=True, exist_ok=True)
    model = whisper.load_model(args.model, device="cpu")
    options = whisper.DecodingOptions(
        language=args.language,
        beam_size=args.beam_size if args.beam_size > 1 else None,
        without_timestamps=True,
        fp16=False,
    )
    batch_size = args.batch_size if args.beam_size <= 1 else 1
    seconds = 0.0
    with open(args.result_path, "a", encoding="utf-8") as out, torch.inference_mode():
        for i in tqdm(range(0, len(todo), batch_size), desc="decoding", file=sys.stderr):
            batch = todo[i : i + batch_size]
            start = time.perf_counter()
            mel = torch.stack(
                [
                    whisper.log_mel_spectrogram(
                        whisper.pad_or_trim(torch.from_numpy(load_audio(u.wav))),
                        model.dims.n_mels,
                    )
                    for u in batch
                ]
            )
            results = whisper.decode(model, mel, options)
            seconds += time.perf_counter() - start
            for u, r in zip(batch, results):
                out.write(f"{u.key} {' '.join(r.text.split())}\n")
            out.flush()
    if todo:
        print(
            f"{args.result_path}: {len(todo)} utterances in {seconds:.1f} s, "
            f"{seconds / len(todo):.3f} s per utterance (beam {args.beam_size}, "
            f"batch {batch_size}, {torch.get_num_threads()} threads)",
            file=sys.stderr,
        )
    else:
        print(f"{args.result_path}: all {len(utts)} utterances already decoded", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
