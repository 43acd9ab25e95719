"""Word timestamps against known word boundaries: WeST (CTC forced alignment) beside
openai-whisper's own `word_timestamps=True`, on the same files, in one run.

    python benchmarks/bench_word_times.py --model_dir examples/mini/exp/ctc_compress \\
        --whisper examples/mini/exp/models/whisper-tiny.en.pt \\
        --text examples/mini/data/heldout/text --recordings 20

Each recording is a sentence of `--text` (Kaldi `key text` lines) whose words are
synthesised one at a time (espeak-ng, and flite / SVOX Pico / Festival voices where
installed, taking turns), each trimmed to where its sound starts and ends (samples above
`TRIM` of the word's peak), and joined with random gaps of 50-400 ms after 0.5 s of
silence: every word's start and end are known to the sample. Both systems transcribe every
file; their words are aligned to the reference words (Levenshtein, after Whisper's English
normaliser), and each word both got right gives a start error and an end error.

Printed per system: words matched, WER, mean / median / 95th-percentile absolute start and
end errors in ms, and the share of words whose start and end are both within 100 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "mini" / "local"))

from voices import available_voices, speak_any  # noqa: E402

from west.data.audio import SAMPLE_RATE, load_audio, prepare_audio  # noqa: E402
from west.scoring.align import CORRECT, align  # noqa: E402
from west.scoring.normalize import get_normalizer  # noqa: E402

TRIM = 0.02  # of a word's peak: where its sound starts and ends
LEAD = 0.5  # seconds of silence before the first word


def pick_voices() -> list[str]:
    """One voice of each installed family (espeak-ng first): the word times do not depend
    on one synthesiser's habits."""
    found = available_voices()
    voices = ["en-us"]
    for family in ("flite", "pico", "fest"):
        if found.get(family):
            voices.append(found[family][0])
    return voices


def synthesise(words: list[str], voice: str, rng: random.Random):
    """(16 kHz samples, [(word, start s, end s)]): words spoken one by one, trimmed, joined."""
    pieces = [np.zeros(int(LEAD * SAMPLE_RATE), dtype=np.float32)]
    times, at = [], LEAD
    for w in words:
        audio, rate = speak_any(voice, w)
        x = prepare_audio(audio.astype(np.float32) / 32768.0, rate, name=w)
        loud = np.nonzero(np.abs(x) > TRIM * np.abs(x).max())[0]
        x = x[loud[0] : loud[-1] + 1]
        times.append((w, at, at + len(x) / SAMPLE_RATE))
        gap = np.zeros(int(rng.uniform(0.05, 0.4) * SAMPLE_RATE), dtype=np.float32)
        pieces += [x, gap]
        at += (len(x) + len(gap)) / SAMPLE_RATE
    pieces.append(np.zeros(int(0.5 * SAMPLE_RATE), dtype=np.float32))
    return np.concatenate(pieces), times


def match(ref: list[tuple[str, float, float]], hyp: list[tuple[str, float, float]], normalize):
    """(start errors, end errors) in ms of the reference words the hypothesis got right, and
    (errors, reference words) for its WER. Words are compared after `normalize`; a word the
    normaliser empties is left out of both."""
    ref = [(normalize(w), s, e) for w, s, e in ref]
    hyp = [(normalize(w), s, e) for w, s, e in hyp]
    ref, hyp = [r for r in ref if r[0]], [h for h in hyp if h[0]]
    ops = align([w for w, _, _ in ref], [w for w, _, _ in hyp])
    starts, ends, errors, i, j = [], [], 0, 0, 0
    for op in ops:
        if op.op == CORRECT:
            starts.append(1000 * abs(hyp[j][1] - ref[i][1]))
            ends.append(1000 * abs(hyp[j][2] - ref[i][2]))
        else:
            errors += 1
        i += op.ref is not None
        j += op.hyp is not None
    return starts, ends, errors, len(ref)


def west_words(model, path: Path) -> list[tuple[str, float, float]]:
    segments = model.transcribe(str(path), return_segments=True, word_timestamps=True)
    return [(w.word, w.start, w.end) for s in segments for w in (s.words or [])]


def whisper_words(model, path: Path, beam: int) -> list[tuple[str, float, float]]:
    result = model.transcribe(
        load_audio(path),  # an array: openai-whisper would read a path with the ffmpeg CLI
        language="en",
        word_timestamps=True,
        beam_size=beam if beam > 1 else None,
        temperature=0.0,
        condition_on_previous_text=False,
        fp16=False,
    )
    return [(w["word"], w["start"], w["end"]) for s in result["segments"] for w in s["words"]]


def summary(name: str, starts, ends, errors: int, words: int, seconds: float) -> dict:
    both = [max(s, e) for s, e in zip(starts, ends)]
    row = {
        "system": name,
        "matched": len(starts),
        "wer": 100.0 * errors / max(words, 1),
        "start_mean": float(np.mean(starts)) if starts else float("nan"),
        "start_median": float(np.median(starts)) if starts else float("nan"),
        "start_p95": float(np.percentile(starts, 95)) if starts else float("nan"),
        "end_mean": float(np.mean(ends)) if ends else float("nan"),
        "end_median": float(np.median(ends)) if ends else float("nan"),
        "end_p95": float(np.percentile(ends, 95)) if ends else float("nan"),
        "within_100ms": 100.0 * float(np.mean(np.array(both) <= 100)) if both else float("nan"),
        "seconds": seconds,
    }
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_dir", required=True, help="a WeST model with a CTC branch")
    p.add_argument("--whisper", required=True, help="openai-whisper checkpoint (.pt) or name")
    p.add_argument("--text", required=True, help="Kaldi text file: `key sentence` lines")
    p.add_argument("--recordings", type=int, default=20)
    p.add_argument("--whisper_beam", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default="/tmp/west_word_times")
    p.add_argument("--json", help="write every figure here")
    args = p.parse_args(argv)

    import torch
    import whisper

    import west

    rng = random.Random(args.seed)
    lines = [x.split(maxsplit=1) for x in Path(args.text).read_text().splitlines() if x.strip()]
    lines = [x for x in lines if len(x) == 2][: args.recordings]
    voices = pick_voices()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    files = []
    for n, (key, sentence) in enumerate(lines):
        audio, times = synthesise(sentence.split(), voices[n % len(voices)], rng)
        path = work / f"{key}.wav"
        sf.write(path, audio, SAMPLE_RATE)
        files.append((path, times))
    seconds = sum(t[-1][2] + 0.5 for _, t in files)
    print(
        f"{len(files)} recordings, {sum(len(t) for _, t in files)} words, {seconds:.0f} s; "
        f"voices: {', '.join(voices)}"
    )
    normalize = get_normalizer("english")
    systems = [
        ("WeST (CTC forced alignment)", west.load(args.model_dir), west_words),
        (
            f"Whisper tiny.en, word_timestamps=True, beam {args.whisper_beam}",
            whisper.load_model(args.whisper, device="cpu"),
            lambda m, path: whisper_words(m, path, args.whisper_beam),
        ),
    ]
    rows = []
    for name, model, words_of in systems:
        starts, ends, errors, total = [], [], 0, 0
        start = time.perf_counter()
        with torch.inference_mode():
            for path, times in files:
                s, e, err, n = match(times, words_of(model, path), normalize)
                starts += s
                ends += e
                errors += err
                total += n
        rows.append(summary(name, starts, ends, errors, total, time.perf_counter() - start))
    print(
        "\n| system | words matched | WER | start error mean / median / p95 (ms) | "
        "end error mean / median / p95 (ms) | start and end within 100 ms | seconds |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['system']} | {r['matched']} | {r['wer']:.1f} | "
            f"{r['start_mean']:.0f} / {r['start_median']:.0f} / {r['start_p95']:.0f} | "
            f"{r['end_mean']:.0f} / {r['end_median']:.0f} / {r['end_p95']:.0f} | "
            f"{r['within_100ms']:.0f} % | {r['seconds']:.1f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
