"""Clean English sentences from Debian's fortune databases (package `fortunes`).

A fortune is split into sentences; a sentence is kept only if espeak-ng will read it the way
it is written: letters, digits, apostrophes and basic punctuation, no abbreviations or
acronyms (read letter by letter, or expanded, unlike their spelling), 3 to 20 words, ending
in `.`, `!` or `?`. Sentences are deduplicated on their transcript.

    python local/fortune_sentences.py [--fortune_dir DIR] | head
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

FORTUNE_DIR = Path("/usr/share/games/fortunes")
MIN_WORDS = 3
MAX_WORDS = 20

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "`": "'"})
# Characters a kept sentence may contain once double quotes and brackets are dropped.
_ALLOWED = re.compile(r"^[A-Za-z0-9' ,.;:!?-]+$")
_ATTRIBUTION = re.compile(r"^\s*(--|\u2014)")  # "-- Mark Twain"
# Abbreviations and initials: espeak-ng expands them ("Mr." -> "mister"), and their
# periods would be taken for the end of a sentence.
_ABBREVIATION = re.compile(
    r"\b(?:Mr|Mrs|Ms|Dr|St|Jr|Sr|Prof|Rev|Gen|Col|Capt|Lt|Sgt|Gov|Sen|Rep|Mt|Ft|Inc|Ltd|Co|"
    r"Corp|vs|etc|No|Vol|pp|cf|al|ca|approx|dept|est)\.|\b[A-Za-z]\.\s*[A-Za-z]?\.?|\.\.",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_ACRONYM = re.compile(r"\b[A-Z]{2,}\b")  # "IBM", "UNIX", "OK": often spelled out


def read_fortunes(fortune_dir: Path = FORTUNE_DIR) -> Iterator[str]:
    """Each fortune's text, from every database in `fortune_dir` in name order.

    The offensive databases (the `off/` folder) are not read; `.dat` indexes and the `.u8`
    links to the plain files are skipped.
    """
    for path in sorted(fortune_dir.iterdir()):
        if not path.is_file() or path.is_symlink() or path.suffix in (".dat", ".u8"):
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        for fortune in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            if fortune.strip():
                yield fortune


def split_sentences(fortune: str) -> list[str]:
    """Sentences of one fortune, attribution lines dropped and lines joined.

    A fortune with an abbreviation or an initial is skipped whole: its periods do not
    reliably end sentences.
    """
    lines = [line for line in fortune.splitlines() if not _ATTRIBUTION.match(line)]
    text = " ".join(" ".join(lines).translate(_QUOTES).split())
    if _ABBREVIATION.search(text):
        return []
    text = re.sub(r'["()]', "", text).replace("--", ", ")
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def transcript(sentence: str) -> str:
    """What the model should write: lower-case words, apostrophes kept, no punctuation.

    "Don't panic -- it's well-known!" -> "don't panic it's well known"
    """
    text = re.sub(r"[^a-z0-9' ]", " ", sentence.lower().replace("-", " "))
    words = (w.strip("'") for w in text.split())
    return " ".join(w for w in words if w)


def clean_sentence(sentence: str, min_words: int = MIN_WORDS) -> str | None:
    """The sentence as espeak-ng should read it, or None if it is not kept."""
    sentence = re.sub(r"\s+([,.;:!?])", r"\1", sentence).strip(" ,;:-")
    if not sentence or sentence[-1] not in ".!?" or not _ALLOWED.match(sentence):
        return None
    if not (sentence[0].isupper() or sentence[0].isdigit()) or _ACRONYM.search(sentence):
        return None
    if re.search(r"[,;:!?-]{2,}|\.[^\s]", sentence.rstrip(".!?")):
        return None  # "!?", "...", "3.14": read differently from how they are written
    if re.search(r"\b[A-Za-z]:", sentence):
        return None  # dialogue labels ("Q: ...", "A: ...") are not read as written
    n = len(transcript(sentence).split())
    return sentence if min_words <= n <= MAX_WORDS else None


def keep_unique(
    raws: Iterable[str], seen: Iterable[str] = (), min_words: int = MIN_WORDS
) -> list[str]:
    """The sentences clean_sentence keeps (at least `min_words` words), each transcript once
    (first occurrence wins), in order; none whose transcript is in `seen`."""
    seen = set(seen)
    kept = []
    for raw in raws:
        sentence = clean_sentence(raw, min_words)
        if sentence is None:
            continue
        key = transcript(sentence)
        if key not in seen:
            seen.add(key)
            kept.append(sentence)
    return kept


def fortune_sentences(fortune_dir: Path = FORTUNE_DIR, seen: Iterable[str] = ()) -> list[str]:
    """Every kept sentence once (first occurrence wins), in database order; none whose
    transcript is in `seen`."""
    return keep_unique(
        (s for fortune in read_fortunes(fortune_dir) for s in split_sentences(fortune)), seen
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fortune_dir", type=Path, default=FORTUNE_DIR)
    args = parser.parse_args()
    for sentence in fortune_sentences(args.fortune_dir):
        print(sentence)


if __name__ == "__main__":
    main()
