"""Long recordings, before and after the repetition guard: WER, time and loops, in one run.

    python benchmarks/bench_long_audio.py --model_dir examples/mini/exp/ctc_compress \\
        --data examples/mini/data/real/data.jsonl --seconds 60 --recordings 3

Real utterances of a data list are joined, in order, with `--pause` seconds of silence
between them into `--recordings` recordings of about `--seconds` each (the reference is
their texts joined). Each is cut at pauses into windows as west-transcribe cuts it, and
decoded with each setting below on the same model, machine and windows:

- before: what WeST did without the guard (`loop_guard=False`, no cap from the audio's
  duration): the LLM alone, greedy and beam 5 (the old west-transcribe's defaults and its
  `--beam 5`), and the recipe's joint CTC / LLM decoding;
- after: the model's own settings (its decode_conf: what west-transcribe does with no
  flags), and the LLM alone, greedy and beam 5, with the guard and the cap.

Printed per setting: WER (Whisper's English normaliser), the most copies of one phrase of
3 or more words in a row in any output, seconds and RTF. The recordings are written to
`--workdir` so west-transcribe can be run on them too.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import west
from west.data.audio import SAMPLE_RATE, load_audio
from west.scoring.normalize import get_normalizer
from west.scoring.wer import score_utterances, summarize


def join_recordings(data: Path, seconds: float, count: int, pause: float, workdir: Path):
    """[(name, wav path, samples, reference)]: consecutive utterances of `data` joined."""
    utts = [json.loads(line) for line in data.read_text().splitlines() if line.strip()]
    gap = np.zeros(int(pause * SAMPLE_RATE), dtype=np.float32)
    out, i = [], 0
    workdir.mkdir(parents=True, exist_ok=True)
    for r in range(count):
        pieces, texts = [], []
        while sum(len(p) for p in pieces) < seconds * SAMPLE_RATE and i < len(utts):
            pieces += [load_audio(utts[i]["wav"]), gap]
            texts.append(utts[i]["txt"])
            i += 1
        if not pieces:
            break
        audio = np.concatenate(pieces)
        path = workdir / f"long{r}.wav"
        sf.write(path, audio, SAMPLE_RATE)
        out.append((f"long{r}", path, audio, " ".join(texts)))
    return out


def most_copies(text: str, min_words: int = 3, max_words: int = 30) -> int:
    """The most back-to-back copies of one phrase of `min_words`..`max_words` words."""
    words, best = text.split(), 1
    for n in range(min_words, max_words + 1):
        for i in range(len(words) - 2 * n + 1):
            k = 1
            while words[i + k * n : i + (k + 1) * n] == words[i : i + n]:
                k += 1
            best = max(best, k)
    return best


def decode(transcriber, audio: np.ndarray, batch_size: int, **settings) -> str:
    """`audio` cut into the Transcriber's windows, decoded with `settings`, texts joined."""
    windows = [w for w in transcriber.windows(audio) if not w.silent]
    texts = []
    for k in range(0, len(windows), batch_size):
        mel, lens = transcriber.features([w.samples for w in windows[k : k + batch_size]])
        texts += transcriber.model.generate(mel=mel, mel_lens=lens, **settings)
    return " ".join(" ".join(t.split()) for t in texts if t.strip())


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_dir", required=True)
    p.add_argument("--data", required=True, help="jsonl data list of real utterances")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each recording")
    p.add_argument("--recordings", type=int, default=3)
    p.add_argument("--pause", type=float, default=0.6, help="silence between utterances, s")
    p.add_argument("--batch_size", type=int, default=8, help="windows decoded together")
    p.add_argument("--workdir", default="/tmp/west_long_audio")
    p.add_argument("--json", help="write every figure here")
    args = p.parse_args(argv)

    transcriber = west.load(args.model_dir)
    d = transcriber.decoding
    recordings = join_recordings(
        Path(args.data), args.seconds, args.recordings, args.pause, Path(args.workdir)
    )
    total = sum(len(a) for _, _, a, _ in recordings) / SAMPLE_RATE
    print(
        f"{len(recordings)} recordings, {total:.1f} s in all "
        f"({', '.join(f'{len(a) / SAMPLE_RATE:.1f}' for _, _, a, _ in recordings)} s); "
        f"the model's decode_conf: beam {d.num_beams}, CTC weight {d.ctc_weight:g}, "
        f"{d.max_new_tokens} tokens a window, {d.max_tokens_per_second:g} a second"
    )
    old = dict(loop_guard=False, max_tokens_per_second=None, max_new_tokens=200)
    new = dict(max_tokens_per_second=d.max_tokens_per_second, max_new_tokens=d.max_new_tokens)
    settings = [
        ("before: greedy, LLM alone (old default)", dict(old, num_beams=1)),
        ("before: beam 5, LLM alone (old --beam 5)", dict(old, num_beams=5)),
        (
            f"before: beam {d.num_beams}, CTC {d.ctc_weight:g} (recipe), no guard",
            dict(old, num_beams=d.num_beams, ctc_weight=d.ctc_weight),
        ),
        (
            "after: the model's decode_conf (no flags)",
            dict(new, num_beams=d.num_beams, ctc_weight=d.ctc_weight, engine=d.engine),
        ),
        ("after: greedy, LLM alone", dict(new, num_beams=1)),
        ("after: beam 5, LLM alone", dict(new, num_beams=5)),
    ]
    normalize, refs = get_normalizer("english"), {n: ref for n, _, _, ref in recordings}
    rows = []
    for name, kwargs in settings:
        if kwargs.get("ctc_weight") and transcriber.model.ctc is None:
            continue
        start, hyps = time.perf_counter(), {}
        with torch.inference_mode():
            for key, _, audio, _ in recordings:
                hyps[key] = decode(transcriber, audio, args.batch_size, **kwargs)
        seconds = time.perf_counter() - start
        summary = summarize(score_utterances(refs, hyps, str.split, normalize))
        copies = max(most_copies(h) for h in hyps.values())
        rows.append(
            dict(setting=name, wer=summary.wer, copies=copies, seconds=seconds, rtf=seconds / total)
        )
        print(
            f"{name:48s} WER {summary.wer:6.2f}  most copies {copies:2d}  "
            f"{seconds:6.1f} s  RTF {seconds / total:.3f}",
            flush=True,
        )
        for key, hyp in hyps.items():
            rows[-1][key] = hyp
    print("\n| setting | WER | most copies of a phrase in a row | seconds | RTF |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['wer']:.2f} | {r['copies']} | {r['seconds']:.1f} | "
            f"{r['rtf']:.3f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
