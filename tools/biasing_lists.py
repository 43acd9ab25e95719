#!/usr/bin/env python3
"""Biasing lists for a test set, built as for the LibriSpeech benchmark of Le et al. (2021).

    tools/biasing_lists.py --train_text TEXT [--train_text TEXT ...] [--extra_text FILE ...]
        [--num_common 5000] --distractors N [--seed 0] [--unit word|char] [--lower]
        [--words_text TEXT] IN OUT_JSONL

The method of "Contextualized streaming end-to-end speech recognition with trie-based deep
biasing and shallow fusion" (fbai-speech's is21_deep_bias lists): the common words are the
``--num_common`` most frequent words of the training transcripts (ties by code point); the
rare-word vocabulary is every other word of the training transcripts and of the
``--extra_text`` files (plain text, e.g. the LibriSpeech LM corpus). Each test utterance's list
is its own rare words (its words that are not common, whether in the vocabulary or not) plus
N distractors drawn from the rare-word vocabulary, none of them a word of the utterance,
shuffled. The draw is seeded by ``--seed`` and the utterance's key, so a list does not depend
on the other utterances of IN. With fewer rare words than N, every allowed one is taken.

Texts are Kaldi ``text`` files (``<key> <words>``); words are split at spaces. For Chinese
that needs the word-segmented transcripts (AISHELL-1's ``aishell_transcript_v0.8.txt`` is
segmented; the recipe's stage 1 keeps it in ``data/<set>/text.orig``): give them as
``--train_text`` and, for the test set, ``--words_text``, and pass ``--unit char`` (the text is
scored by character): a distractor must then also not occur anywhere in the utterance's
characters, so that it never marks reference characters as biased.

IN is a data list (jsonl, ``{"key", "wav", "txt", ...}``: OUT_JSONL is each line with
``"context"`` added, so ``west-recognize`` decodes it with its lists) or a Kaldi text (OUT_JSONL
holds ``{"key", "context"}`` lines). The utterance's words are its ``txt`` (its text), or its
line of ``--words_text``. ``--lower`` lower-cases every text read (LibriSpeech's corpus text
and LM corpus are upper case; the recipe's targets are lower case).

Runs from a checkout too: without an installed ``west`` it uses the one beside this script
(only its standard-library file reader).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

try:
    import west  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from west.data.kaldi import DataError, read_kaldi_table, text_lines  # noqa: E402
from west.data.rare_words import (  # noqa: E402
    UNITS,
    biasing_list,
    build_vocabulary,
    own_rare_words,
)

PROG = "biasing_lists.py"


@dataclass
class Utterance:
    """One utterance of IN: its key, its transcript, and its jsonl line (None: Kaldi text)."""

    key: str
    text: str | None
    record: dict | None
    where: str  # file:line


def read_input(path: str) -> list[Utterance]:
    """A data list (jsonl) or a Kaldi text, told apart by the first line's ``{``."""
    lines = list(text_lines(path))
    if not (lines and lines[0][1].lstrip().startswith("{")):
        table = read_kaldi_table(path, allow_empty_value=True)
        return [Utterance(k, text, None, f"{path}:{n}") for k, (n, text) in table.items()]
    utts, seen = [], set()
    for n, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f'{path}:{n}: not valid JSON ({e.msg}); expected {{"key": ..., "txt": ...}}'
            ) from None
        if not isinstance(record, dict) or not isinstance(record.get("key"), str):
            raise DataError(f'{path}:{n}: no "key" string; expected {{"key": ..., "txt": ...}}')
        txt = record.get("txt")
        if txt is not None and not isinstance(txt, str):
            raise DataError(f'{path}:{n}: "txt" must be a string, got {type(txt).__name__}')
        if record["key"] in seen:
            raise DataError(f"{path}:{n}: key '{record['key']}' again; expected each key once")
        seen.add(record["key"])
        utts.append(Utterance(record["key"], txt, record, f"{path}:{n}"))
    return utts


def utterance_words(utts: list[Utterance], words_text: str | None) -> list[str]:
    """Each utterance's transcript: from ``words_text`` (a Kaldi text) if given, else its own."""
    table = read_kaldi_table(words_text, allow_empty_value=True) if words_text else None
    texts = []
    for u in utts:
        if table is not None:
            if u.key not in table:
                raise DataError(
                    f"{words_text}: no line for '{u.key}' ({u.where}); expected every "
                    "utterance of the input"
                )
            texts.append(table[u.key][1])
        elif u.text is None:
            raise DataError(f'{u.where}: no "txt"; expected a transcript, or give --words_text')
        else:
            texts.append(u.text)
    return texts


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    p.add_argument("input", metavar="IN", help="data.jsonl or Kaldi text of the test set")
    p.add_argument("output", metavar="OUT_JSONL", help='the input\'s lines with "context" added')
    p.add_argument(
        "--train_text",
        action="append",
        required=True,
        metavar="TEXT",
        help="Kaldi text of the training transcripts (repeatable): common and rare words",
    )
    p.add_argument(
        "--extra_text",
        action="append",
        default=[],
        metavar="FILE",
        help="plain text, one sentence per line (repeatable): more rare words",
    )
    p.add_argument("--num_common", type=int, default=5000, help="common words (default: 5000)")
    p.add_argument(
        "--distractors",
        type=int,
        required=True,
        metavar="N",
        help="rare words drawn for each utterance, besides its own",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the draws (default: 0)")
    p.add_argument(
        "--unit",
        choices=UNITS,
        default="word",
        help="how the text is scored: word, or char (a distractor must not occur in the "
        "utterance's characters); default: word",
    )
    p.add_argument("--lower", action="store_true", help="lower-case every text read")
    p.add_argument(
        "--words_text",
        metavar="TEXT",
        help="Kaldi text of the input's utterances, word-segmented (default: their own text)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.num_common < 0 or args.distractors < 0:
        parser.error("--num_common and --distractors must be 0 or more")
    case = str.lower if args.lower else str
    try:
        train = [
            case(text)
            for path in args.train_text
            for _, text in read_kaldi_table(path, allow_empty_value=True).values()
        ]
        extra = (case(text) for path in args.extra_text for _, text in text_lines(path))
        vocab = build_vocabulary(train, extra, args.num_common)
        utts = read_input(args.input)
        texts = [case(t) for t in utterance_words(utts, args.words_text)]
    except (DataError, OSError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1

    short, entries = 0, 0
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for u, text in zip(utts, texts):
            words = text.split()
            context = biasing_list(u.key, words, vocab, args.distractors, args.seed, args.unit)
            own = len(own_rare_words(words, vocab.common))
            short += len(context) - own < args.distractors
            entries += len(context)
            record = dict(u.record) if u.record is not None else {"key": u.key}
            record["context"] = context
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(
        f"{PROG}: {out}: {len(utts)} lists, {entries / max(len(utts), 1):.1f} entries each "
        f"on average ({len(vocab.common)} common words, {len(vocab.rare)} rare words to draw "
        f"{args.distractors} distractors from)",
        file=sys.stderr,
    )
    if short:
        print(
            f"{PROG}: warning: {short} list(s) got fewer than {args.distractors} distractors: "
            "the rare-word vocabulary is too small",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
