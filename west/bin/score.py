"""Score a hypothesis ``text`` file against a reference, printing Kaldi's WER lines.

Usage::

    west-score [--mode word|char|mixed] [--normalizer english|chinese|none] [--no_normalize]
               [--details FILE] [--filter_hallucinations] [--biasing FILE] REF HYP

``--biasing FILE`` adds ``%B-WER`` and ``%U-WER`` lines (in every mode: ``%WER`` is printed for
a CER too): the errors on the tokens of each utterance's biasing list, and on the others.
FILE is a jsonl of ``{"key": ..., "context": [...]}`` (a data list with biasing lists) or a
list of phrases, one per line, for every utterance; see west/scoring/biasing.py.

REF or HYP (not both) may be ``-``, standard input. Exit status: 0 when scored; 1 when an
input file is unreadable or malformed, or HYP has an utterance that REF lacks; 141 (as for a
shell command killed by SIGPIPE) when standard output is closed early (``| head -0``), without
a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from west.scoring.biasing import read_biasing_file, score_biasing
from west.scoring.details import write_details
from west.scoring.english import EnglishNormalizerUnavailable
from west.scoring.normalize import DEFAULT_NORMALIZER, NORMALIZERS, get_normalizer
from west.scoring.report import biasing_lines, filtered_lines, kaldi_lines
from west.scoring.textio import STDIN, TextFileError, read_kaldi_text
from west.scoring.tokenize import MODES, get_tokenizer
from west.scoring.wer import UnknownKeyError, score_utterances, summarize

PROG = "west-score"
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Kaldi-style WER/CER of a hypothesis text file against a reference.",
    )
    p.add_argument(
        "ref", help="reference Kaldi text file: '<utt-id> <transcript>' per line ('-': stdin)"
    )
    p.add_argument("hyp", help="hypothesis Kaldi text file, same format ('-': stdin)")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="word",
        help="scoring unit: words (English), characters (Chinese), or CJK characters + "
        "Latin words (default: word)",
    )
    p.add_argument(
        "--normalizer",
        choices=NORMALIZERS,
        default=None,
        help="text normaliser for both files (default: english for word mode, "
        "chinese for char and mixed modes)",
    )
    p.add_argument(
        "--no_normalize",
        "--no-normalize",
        action="store_true",
        help="score the text as written (same as --normalizer none)",
    )
    p.add_argument("--details", metavar="FILE", help="write per-utterance alignments here")
    p.add_argument(
        "--filter_hallucinations",
        "--filter-hallucinations",
        action="store_true",
        help="also report the WER without hallucinated utterances "
        "(see west/scoring/hallucination.py)",
    )
    p.add_argument(
        "--biasing",
        metavar="FILE",
        help="also report B-WER and U-WER: errors on the words of each utterance's biasing "
        'list and on the others; FILE: jsonl with "key" and "context" (a list of phrases) '
        "per utterance, or one phrase per line for every utterance",
    )
    return p


def _normalizer_name(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    if args.no_normalize:
        if args.normalizer not in (None, "none"):
            parser.error(f"--no_normalize contradicts --normalizer {args.normalizer}")
        return "none"
    return args.normalizer or DEFAULT_NORMALIZER[args.mode]


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    normalizer = _normalizer_name(args, parser)
    if args.ref == STDIN and args.hyp == STDIN:
        parser.error("REF and HYP cannot both be '-' (standard input)")
    if args.biasing == STDIN and STDIN in (args.ref, args.hyp):
        parser.error("--biasing cannot be '-' (standard input) when REF or HYP is")
    tokenize, normalize = get_tokenizer(args.mode), get_normalizer(normalizer)
    try:
        refs = read_kaldi_text(args.ref)
        hyps = read_kaldi_text(args.hyp)
        lists = read_biasing_file(args.biasing) if args.biasing else None
        scores = score_utterances(
            refs,
            hyps,
            tokenize=tokenize,
            normalize=normalize,
            detect_hallucinations=args.filter_hallucinations,
            hyp_name=args.hyp,
        )
    except (TextFileError, UnknownKeyError, EnglishNormalizerUnavailable, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1

    missing = [s.key for s in scores if s.missing]
    if missing:
        print(
            f"{PROG}: {len(missing)} reference utterance(s) have no hypothesis in {args.hyp}, "
            f"counted as all deletions: {' '.join(missing)}",
            file=sys.stderr,
        )
    raw = summarize(scores)
    lines = kaldi_lines(raw)
    if args.filter_hallucinations:
        flagged = [s for s in scores if s.hallucination]
        for s in flagged:
            print(
                f"{PROG}: hallucination ({s.hallucination}): {s.key} {s.hyp_text}", file=sys.stderr
            )
        kept = summarize(s for s in scores if not s.hallucination)
        lines += filtered_lines(raw, kept, len(flagged))
    if lists is not None:
        biased, unbiased, unlisted = score_biasing(scores, lists, tokenize, normalize)
        if unlisted:
            print(
                f"{PROG}: {len(unlisted)} reference utterance(s) have no biasing list in "
                f"{args.biasing}, so no biased words: {' '.join(unlisted[:10])}"
                f"{' ...' if len(unlisted) > 10 else ''}",
                file=sys.stderr,
            )
        lines += biasing_lines(biased, unbiased, partial=bool(raw.missing))
    if raw.wer is None:
        print(
            f"{PROG}: WER is undefined: the references hold no {args.mode} tokens "
            f"after '{normalizer}' normalisation",
            file=sys.stderr,
        )
    if args.details:
        with open(args.details, "w", encoding="utf-8") as f:
            write_details(scores, f)
    try:
        print("\n".join(lines))
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader is gone; point stdout at /dev/null so the flush at exit stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return 0


if __name__ == "__main__":
    sys.exit(main())
