"""English example sentences from WordNet 3.0's glosses (Debian package `wordnet-base`).

A WordNet gloss ends with quoted examples of the word in use: `...; "she was able to
program her computer"; "unable to obtain funds"`. Across nouns, verbs, adjectives and adverbs
there are about 48,000 of them: everyday English in a far wider vocabulary than the fortunes,
many of them phrases rather than sentences (as people often speak). Each example gets a
capital letter and a full stop and is then kept only if it has at least MIN_WORDS words and
fortune_sentences.clean_sentence keeps it; transcripts are deduplicated.

    apt-get install wordnet-base
    python local/wordnet_sentences.py [--wordnet_dir /usr/share/wordnet] | head
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from fortune_sentences import keep_unique

WORDNET_DIR = Path("/usr/share/wordnet")
DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
MIN_WORDS = 4  # "a major earthquake" (3) is a phrase; WordNet has thousands of them
_EXAMPLE = re.compile(r'"([^"]+)"')


def read_examples(wordnet_dir: Path = WORDNET_DIR) -> Iterator[str]:
    """Each quoted example of every synset's gloss, in file and line order.

    Lines that start with two spaces are the licence header, not synsets.
    """
    for name in DATA_FILES:
        path = wordnet_dir / name
        if not path.is_file():
            raise SystemExit(f"{path}: not found; install WordNet: apt-get install wordnet-base")
        with path.open(encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                _, bar, gloss = line.partition(" | ")
                if bar:
                    yield from (m.group(1) for m in _EXAMPLE.finditer(gloss))


def as_sentence(example: str) -> str:
    """ "she was able to swim" -> "She was able to swim.": what clean_sentence expects."""
    text = " ".join(example.split()).rstrip(" ,;:")
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def wordnet_sentences(wordnet_dir: Path = WORDNET_DIR, seen: Iterable[str] = ()) -> list[str]:
    """Every kept example once, in WordNet's order; none whose transcript is in `seen`."""
    return keep_unique((as_sentence(e) for e in read_examples(wordnet_dir)), seen, MIN_WORDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet_dir", type=Path, default=WORDNET_DIR)
    args = parser.parse_args()
    for sentence in wordnet_sentences(args.wordnet_dir):
        print(sentence)


if __name__ == "__main__":
    main()
