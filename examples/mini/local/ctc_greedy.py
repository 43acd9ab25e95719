"""The CTC branch alone: greedy CTC decoding of a trained model's projected frames, no LLM.

    python local/ctc_greedy.py --model_dir exp/ctc_compress/checkpoint-2000 \
        --data data/real/data.jsonl --result_path exp/ctc_compress/ctc_greedy_real/text

writes `key text` lines (the best label per 100 ms frame, repeats merged, blanks dropped,
decoded by the LLM's tokenizer, lower-cased). It measures what the speech side has learnt,
before any LLM: how the set-ups in README.md were compared.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from west import load
from west.data.audio import load_audio, log_mel
from west.data.dataset import read_data


def greedy_labels(logits: torch.Tensor) -> list[int]:
    """(N, V' + 1) frame logits, blank last -> CTC label indices of the best path."""
    best = logits.argmax(-1).tolist()
    blank = logits.shape[-1] - 1
    return [b for i, b in enumerate(best) if b != blank and (i == 0 or b != best[i - 1])]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, help="a checkpoint with a CTC branch")
    p.add_argument("--data", required=True, help="data.jsonl or Kaldi data dir")
    p.add_argument("--result_path", required=True, type=Path)
    args = p.parse_args(argv)
    model = load(args.model_dir).model.eval()
    if model.ctc is None:
        raise SystemExit(f"{args.model_dir}: the model has no CTC branch (ctc_conf.weight 0)")
    args.result_path.parent.mkdir(parents=True, exist_ok=True)
    with open(args.result_path, "w", encoding="utf-8") as out, torch.inference_mode():
        for utt in read_data(args.data):
            mel = log_mel(load_audio(utt.wav), model.encoder.n_mels)[None]
            speech, lens = model.speech_embeddings(mel, torch.tensor([mel.shape[-1]]))
            logits = model.ctc.logits(speech, model.embed_tokens)[0, : int(lens[0])]
            labels = torch.tensor(greedy_labels(logits), dtype=torch.long)
            text = model.tokenizer.decode(model.ctc.token_ids(labels).tolist())
            out.write(f"{utt.key} {' '.join(text.lower().split())}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
