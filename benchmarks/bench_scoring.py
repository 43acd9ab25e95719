#!/usr/bin/env python3
"""Time ``west-score`` on generated text and the alignment of one long utterance.

Usage: python benchmarks/bench_scoring.py [--utts 20000] [--words 20] [--long 5000] [--textbook]

1. Writes a reference of ``--utts`` utterances of ``--words`` words (a 3,000-word vocabulary
   with number words, capitals, punctuation and British spellings mixed in) and a hypothesis
   with about 10 % of words substituted, deleted or inserted, then runs
   ``python -m west.bin.score`` on them in a fresh process (start-up included) in word mode
   (English normaliser) and char mode.
2. Aligns one ``--long``-word utterance with itself edited, in a fresh process, and prints its
   time and peak resident memory; ``--textbook`` also runs the O(n*m) table
   (``west.scoring.align.align_reference``) for comparison.
"""

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXTRA = (
    "twenty five one two three hundred thousand first second percent dollars colour centre "
    "Mr. it's don't can't won't 1,000 3.5 $5 10% okay, well. um uh Hello World!"
).split()

ALIGN = """
import random, resource, sys, time
from west.scoring.align import align, align_reference
fn = align_reference if sys.argv[2] == "textbook" else align
n = int(sys.argv[1]); rng = random.Random(1); vocab = [f"w{i}" for i in range(3000)]
ref = [rng.choice(vocab) for _ in range(n)]
hyp = [w if rng.random() < 0.9 else rng.choice(vocab) for w in ref]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); ops = fn(ref, hyp); dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{dt:.3f} s, peak RSS {peak / 1024:.0f} MB ({(peak - before) / 1024:.0f} MB for the alignment)")
"""


def make_pair(folder: Path, utts: int, words: int, rng: random.Random) -> tuple[Path, Path]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    vocab = ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(3000)]
    vocab += EXTRA * 20
    ref_lines, hyp_lines = [], []
    for u in range(utts):
        ref = [rng.choice(vocab) for _ in range(words)]
        hyp = []
        for w in ref:
            r = rng.random()
            if r < 0.04:
                hyp.append(rng.choice(vocab))
            elif r < 0.07:
                continue
            else:
                hyp.append(w)
            if rng.random() < 0.03:
                hyp.append(rng.choice(vocab))
        ref_lines.append(f"utt{u:06d} {' '.join(ref)}\n")
        hyp_lines.append(f"utt{u:06d} {' '.join(hyp)}\n")
    (folder / "ref").write_text("".join(ref_lines), encoding="utf-8")
    (folder / "hyp").write_text("".join(hyp_lines), encoding="utf-8")
    return folder / "ref", folder / "hyp"


def timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t, out.splitlines()[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--utts", type=int, default=20000)
    p.add_argument("--words", type=int, default=20)
    p.add_argument("--long", type=int, default=5000)
    p.add_argument("--textbook", action="store_true", help="also time the O(n*m) table")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ref, hyp = make_pair(Path(tmp), args.utts, args.words, random.Random(0))
        print(f"{args.utts} utterances x {args.words} words:")
        for mode in ("word", "char"):
            seconds, line = timed(
                [sys.executable, "-m", "west.bin.score", "--mode", mode, str(ref), str(hyp)]
            )
            print(f"  west-score --mode {mode}: {seconds:.2f} s   {line}")
    kinds = ["rapidfuzz", "textbook"] if args.textbook else ["rapidfuzz"]
    for kind in kinds:
        out = subprocess.run(
            [sys.executable, "-c", ALIGN, str(args.long), kind],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"one {args.long}-word utterance, align ({kind}): {out}")


if __name__ == "__main__":
    main()
