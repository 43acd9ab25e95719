"""Sentences with rare names, for testing contextual biasing: WordNet's people and places put
into sentence templates.

WordNet 3.0 (Debian's `wordnet-base`, as for local/wordnet_sentences.py) marks about 7,700
nouns as *instances*: Brahms is an instance of composer, Vienna of national capital, the Adige
of river. Those of the person and location files give each template slot its pool:

    composer   painter   writer    scientist   person (any of them, and statesmen, explorers...)
    city       country   island    river       peak    lake

A place is named by its synset's first lemma (Vienna, not Austrian capital; Balaton, not Lake
Balaton: the template says "Lake"), if that passes the checks below; a person by their first
one-word lemma (Brahms), or now and then by a two-word one ending in it (Johannes Brahms).
A name is kept only if every word of it

* is a plain capitalised word of 3 letters or more (letters only, but for an inner capital
  or apostrophe as in McCartney or O'Neill): what transcript() keeps as written, with no
  hyphen, period or acronym for a voice to read otherwise;
* is not an ordinary English word (a lower-case WordNet lemma, or an adjective, verb or adverb:
  not Bath, China, Canadian);
* is not among the `top` most frequent words of the training transcripts, ties included (with
  8,000 training utterances the 5,000th word occurs once, so a kept name never occurs there).

Each name is used once. Templates are taken in a seeded shuffle, round after round, and hold
1 to 3 names in 6 to 16 words; every sentence passes fortune_sentences.clean_sentence, and
none is one of `seen`'s transcripts.

    python local/name_sentences.py --train_text data/train/text --num 20
"""

from __future__ import annotations

import argparse
import random
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fortune_sentences import clean_sentence, transcript
from wordnet_sentences import WORDNET_DIR

MIN_WORDS, MAX_WORDS = 6, 16
TOP_WORDS = 5000
FULL_NAME_SHARE = 0.3  # of the people named, those named by first name and surname

# Template slot -> the WordNet categories (an instance's hypernym, as its first lemma) it draws
# from. `person` also draws from every other person slot.
SLOTS = {
    "composer": "composer pianist conductor",
    "painter": "painter old_master",
    "writer": "writer poet dramatist novelist essayist",
    "scientist": "physicist chemist mathematician astronomer nuclear_physicist biochemist "
    "physiologist biologist inventor geneticist naturalist",
    "person": "statesman philosopher explorer architect actor actress singer dancer economist "
    "historian film_maker sculptor navigator psychologist industrialist educator aviator "
    "journalist",
    "city": "city town port national_capital state_capital port_of_entry provincial_capital",
    "country": "country African_country Asian_country European_country South_American_country",
    "island": "island",
    "river": "river",
    "peak": "mountain_peak volcano mountain",
    "lake": "lake",
}
PEOPLE = ("composer", "painter", "writer", "scientist", "person")

# {slot} is replaced by a name of that slot's pool; one slot twice takes two names.
TEMPLATES = (
    "We drove from {city} to {city} in the spring.",
    "My sister moved to {city} after she finished school.",
    "The next train to {city} leaves in ten minutes.",
    "Have you ever been to {country} in the winter?",
    "They spent two weeks on {island} last summer.",
    "The old bridge over the {river} was closed for repairs.",
    "We followed the {river} all the way to {city}.",
    "Her grandparents were born in a small village near {city}.",
    "The flight from {city} to {city} was delayed by three hours.",
    "He climbed Mount {peak} with two friends from {city}.",
    "On a clear day you can see Mount {peak} from the valley.",
    "She sent me a postcard from {island} with a picture of the harbour.",
    "Our company opened a new office in {city} this year.",
    "The ferry to {island} only runs on weekends.",
    "Fishing boats sail up the {river} every morning.",
    "The conference will be held in {city} next October.",
    "For many years they shipped coffee from {country} to {country}.",
    "We camped on the shore of Lake {lake} for a week.",
    "Is it true that it rarely snows in {city}?",
    "The museum in {city} keeps a famous collection of old maps.",
    "The orchestra played a symphony by {composer} last night.",
    "We listened to a recording of {composer} on the way to {city}.",
    "The gallery in {city} bought a painting by {painter}.",
    "She is reading a novel by {writer} for her class.",
    "Our teacher compared {writer} with {writer} in today's lecture.",
    "There is a portrait of {person} in the main hall.",
    "He wrote a long book about the life of {person}.",
    "This week the students learned about {scientist} and {scientist}.",
    "My favourite piece is a quartet by {composer}.",
    "I found an old letter written by {person} in the library.",
    "The pianist from {country} played two pieces by {composer}.",
    "Professor {scientist} gave a talk about the stars.",
    "The new play by {writer} opened in {city} on Friday.",
    "A new statue of {person} stands in the square.",
    "Please put the books by {writer} on the top shelf.",
    "The exhibition shows {painter} and {painter} side by side.",
    "Everyone at the party was talking about {person}.",
    "The lecture on {scientist} starts at nine in the morning.",
    "My uncle has a copy of every poem by {writer}.",
    "The film about {person} was shot in {country} and on {island}.",
    "Did you know that {person} once lived in {city}?",
    "The choir from {city} will sing a mass by {composer}.",
    "Last year we crossed the {river} near the border with {country}.",
    "I met Doctor {scientist} at the station in {city}.",
    "She keeps a map of {island} above her desk.",
    "The festival in {city} celebrates the music of {composer}.",
    "Letters from {painter} to {writer} were sold in {city} yesterday.",
    "The ship sailed from {city} down the {river} to the sea.",
)

_SLOT = re.compile(r"\{(\w+)\}")
# Brahms, McCartney, O'Neill
_NAME_WORD = re.compile(r"[A-Z][a-z]+(?:[A-Z][a-z]+)?|[A-Z]'[A-Z][a-z]+")
# Countries and islands that take `the` (the Netherlands, the Azores) end in s; so do a few
# that do not (Cyprus): none of them is used, as the templates have no `the` for them.
_THE_PLURAL = ("country", "island")


@dataclass(frozen=True)
class Instance:
    """A named person or place of WordNet: its lemmas (underscores for spaces), in order."""

    lemmas: tuple[str, ...]
    category: str  # its hypernym's first lemma: composer, city, river


def _synsets(path: Path) -> Iterable[tuple[str, list[str], list[tuple[str, str]]]]:
    """(offset, lemmas, pointers as (symbol, target offset)) per synset of a WordNet data
    file; an adjective's marker (`(a)`, `(p)`) is dropped from its lemma."""
    if not path.is_file():
        raise SystemExit(f"{path}: not found; install WordNet: apt-get install wordnet-base")
    with path.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith("  "):  # the licence header
                continue
            fields = line.partition(" | ")[0].split()
            n = int(fields[3], 16)
            lemmas = [re.sub(r"\(\w+\)$", "", w) for w in fields[4 : 4 + 2 * n : 2]]
            count = int(fields[4 + 2 * n])
            ptrs = fields[5 + 2 * n : 5 + 2 * n + 4 * count]
            yield fields[0], lemmas, [(ptrs[i], ptrs[i + 1]) for i in range(0, len(ptrs), 4)]


def read_instances(wordnet_dir: Path = WORDNET_DIR) -> list[Instance]:
    """Every instance noun of WordNet, in file order, with the category it is an instance of."""
    first_lemma: dict[str, str] = {}
    found: list[tuple[list[str], str]] = []
    for offset, lemmas, ptrs in _synsets(wordnet_dir / "data.noun"):
        first_lemma[offset] = lemmas[0]
        of = [target for symbol, target in ptrs if symbol == "@i"]
        if of:
            found.append((lemmas, of[0]))
    return [Instance(tuple(lemmas), first_lemma[of]) for lemmas, of in found]


def ordinary_words(wordnet_dir: Path = WORDNET_DIR) -> set[str]:
    """Lower-cased words that are ordinary English: any word of a lower-case WordNet lemma,
    and every word of an adjective, verb or adverb lemma (Canadian, Parisian)."""
    words = set()
    for pos in ("noun", "verb", "adj", "adv"):
        for _, lemmas, _ in _synsets(wordnet_dir / f"data.{pos}"):
            for word in (w for lemma in lemmas for w in lemma.split("_")):
                if pos != "noun" or word.islower():
                    words.add(word.lower())
    return words


def frequent_words(train_text: Path, top: int = TOP_WORDS) -> set[str]:
    """The `top` most frequent words of a Kaldi `text` file, and every word as frequent as the
    last of them (a tie is no rarer)."""
    counts = Counter(w for line in train_text.open(encoding="utf-8") for w in line.split()[1:])
    ranked = counts.most_common()
    if len(ranked) <= top:
        return set(counts)
    floor = ranked[top - 1][1]
    return {w for w, c in ranked if c >= floor}


def name_pools(
    instances: list[Instance], exclude: set[str], seed: int
) -> dict[str, list[tuple[str, str | None]]]:
    """Slot -> its names in a seeded shuffle, each as (short form, full form or None).

    `exclude`: lower-case words no name word may be (ordinary and frequent words). A name is
    in one pool only, its first slot in SLOTS' order.
    """

    def fits(lemma: str) -> bool:
        return all(
            _NAME_WORD.fullmatch(w) and len(w) >= 3 and w.lower() not in exclude
            for w in lemma.split("_")
        )

    slot_of = {cat: slot for slot, cats in SLOTS.items() for cat in cats.split()}
    pools: dict[str, dict[str, str | None]] = {slot: {} for slot in SLOTS}
    taken: set[str] = set()
    for inst in instances:
        slot = slot_of.get(inst.category)
        if slot is None:
            continue
        if slot in PEOPLE:
            short = next((w for w in inst.lemmas if "_" not in w), None)
            if short is None or not fits(short):
                continue
            full = next(
                (w for w in inst.lemmas if w.count("_") == 1 and w.endswith("_" + short)), None
            )
            name = (short, full.replace("_", " ") if full and fits(full) else None)
        else:  # the first lemma only: the others are old or other-language names, nicknames
            short = inst.lemmas[0]
            if short.count("_") > 1 or not fits(short):
                continue
            if slot in _THE_PLURAL and short.endswith("s"):
                continue
            name = (short.replace("_", " "), None)
        if transcript(name[0]) not in taken:
            taken.add(transcript(name[0]))
            pools[slot][name[0]] = name[1]
    shuffled = {}
    for slot, names in pools.items():
        order = sorted(names.items())
        random.Random(f"{seed}:names:{slot}").shuffle(order)
        shuffled[slot] = order
    return shuffled


@dataclass(frozen=True)
class NameSentence:
    sentence: str  # what the voice reads
    names: tuple[str, ...]  # the names in it, as transcript() writes them, in order


def fill(template: str, names: list[str]) -> str:
    """`template` with its slots replaced by `names`, in order."""
    it = iter(names)
    return _SLOT.sub(lambda _: next(it), template)


def name_sentences(
    pools: dict[str, list[tuple[str, str | None]]],
    num: int,
    seed: int,
    seen: Iterable[str] = (),
) -> list[NameSentence]:
    """`num` sentences from TEMPLATES, each name used once; none whose transcript is in `seen`.

    Raises SystemExit when the pools run dry first.
    """
    seen = set(seen)
    rng = random.Random(f"{seed}:names")
    left = {slot: list(names) for slot, names in pools.items()}
    people = [slot for slot in PEOPLE if slot != "person"]
    out: list[NameSentence] = []
    while len(out) < num:
        order = list(TEMPLATES)
        rng.shuffle(order)
        progress = False
        for template in order:
            if len(out) == num:
                break
            slots = _SLOT.findall(template)
            drawn: list[tuple[str, tuple[str, str | None]]] = []  # (pool, name)
            for slot in slots:
                # `person` takes from its own pool or another person slot's
                source = rng.choice([slot, *people]) if slot == "person" else slot
                if not left[source]:
                    source = slot
                if not left[source]:
                    break
                drawn.append((source, left[source].pop()))
            if len(drawn) < len(slots):  # a pool ran dry: the names go back for other templates
                for source, name in reversed(drawn):
                    left[source].append(name)
                continue
            spoken = []
            for _, (short, full) in drawn:
                use_full = full is not None and rng.random() < FULL_NAME_SHARE
                spoken.append(full if use_full else short)
            sentence = fill(template, spoken)
            n_words = len(transcript(sentence).split())
            if clean_sentence(sentence) != sentence or not MIN_WORDS <= n_words <= MAX_WORDS:
                raise ValueError(f"template {template!r} gives an unusable {sentence!r}")
            if transcript(sentence) in seen:
                continue
            seen.add(transcript(sentence))
            out.append(NameSentence(sentence, tuple(transcript(s) for s in spoken)))
            progress = True
        if not progress:
            raise SystemExit(f"{num} name sentences asked for, but the names ran out at {len(out)}")
    return out


def read_text(path: Path) -> list[str]:
    """The transcripts of a Kaldi `text` file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(maxsplit=1)[1] if " " in line else "" for line in lines]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train_text", type=Path, required=True, help="Kaldi text file")
    parser.add_argument("--wordnet_dir", type=Path, default=WORDNET_DIR)
    parser.add_argument("--num", type=int, default=100)
    parser.add_argument("--seed", type=int, default=777)
    args = parser.parse_args()
    exclude = ordinary_words(args.wordnet_dir) | frequent_words(args.train_text)
    pools = name_pools(read_instances(args.wordnet_dir), exclude, args.seed)
    for s in name_sentences(pools, args.num, args.seed, read_text(args.train_text)):
        print(f"{s.sentence}\t{' | '.join(s.names)}")


if __name__ == "__main__":
    main()
