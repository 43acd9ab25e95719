"""Synthesise the mini recipe's biasing test set: sentences with rare names, held-out voices.

    python local/prepare_names.py --data_dir data --num_names 100 --nj 2

reads DATA_DIR/train/text (local/prepare_corpus.py's training transcripts: the names must be
rare there) and writes, like prepare_corpus.py's sets,

    DATA_DIR/wav/names/<key>-<hash>.wav
    DATA_DIR/names/{wav.scp,text,utt2spk,spk2utt,utt2dur}
    DATA_DIR/names/data.jsonl     heldout's fields, and "names": the person and place names
                                  in the transcript, as it writes them (["johannes brahms"])

The sentences (local/name_sentences.py) are WordNet's people and places put into sentence
templates; the voices are the held-out ones, every family in turn as in `heldout`, at the
corpus's speeds and pitches. A sentence's names are the words a biasing list should carry.
Wavs that exist are reused, as by prepare_corpus.py.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from functools import partial
from multiprocessing import Pool
from pathlib import Path

from name_sentences import (
    TOP_WORDS,
    NameSentence,
    frequent_words,
    name_pools,
    name_sentences,
    ordinary_words,
    read_instances,
    read_text,
)
from prepare_corpus import HELDOUT, Job, Voices, new_job, pick_voice, synthesise, write_split
from prepare_corpus import get_parser as corpus_parser
from wordnet_sentences import WORDNET_DIR

SPLIT = "names"

log = logging.getLogger("prepare_names")


def make_jobs(sentences: list[NameSentence], args: argparse.Namespace) -> list[Job]:
    """One job per sentence, reproducibly from `args.seed`: the held-out voices of each family
    in turn, speed and pitch drawn from `args`' ranges."""
    families = tuple(args.families.split())
    voices = Voices.build(args.heldout_voices, families)
    rng = random.Random(f"{args.seed}:{SPLIT}")
    data_dir = Path(args.data_dir).resolve()
    jobs = []
    for i, s in enumerate(sentences):
        voice = pick_voice(rng, voices.heldout, families[i % len(families)])
        speed = rng.randint(args.min_speed, args.max_speed)
        pitch = rng.randint(args.min_pitch, args.max_pitch)
        jobs.append(new_job(data_dir, SPLIT, i, voice, speed, pitch, s.sentence))
    return jobs


def get_parser() -> argparse.ArgumentParser:
    corpus = corpus_parser()  # the corpus's defaults: the same voices, speeds and pitches
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", type=Path, default=Path("data"), help="(default: data)")
    p.add_argument("--num_names", type=int, default=100, help="utterances (default: 100)")
    p.add_argument(
        "--train_text",
        type=Path,
        help="training transcripts (Kaldi text) that the names must be rare in and the "
        "sentences not in (default: DATA_DIR/train/text)",
    )
    p.add_argument(
        "--top_words",
        type=int,
        default=TOP_WORDS,
        help=f"no name word is among the training text's N most frequent (default: {TOP_WORDS})",
    )
    p.add_argument("--seed", type=int, default=corpus.get_default("seed"))
    p.add_argument("--nj", type=int, default=2, help="synthesis processes (default: 2)")
    p.add_argument("--wordnet_dir", type=Path, default=WORDNET_DIR)
    p.add_argument(
        "--heldout_voices",
        default=HELDOUT,
        help=f"as prepare_corpus.py's: the voices to read with (default: '{HELDOUT}')",
    )
    p.add_argument("--families", default=corpus.get_default("families"))
    for name in ("min_speed", "max_speed", "min_pitch", "max_pitch", "max_seconds"):
        default = corpus.get_default(name)
        p.add_argument(f"--{name}", type=type(default), default=default)
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    train_text = args.train_text or args.data_dir / "train" / "text"
    if not train_text.is_file():
        raise SystemExit(f"{train_text}: not found; synthesise the corpus first")
    exclude = ordinary_words(args.wordnet_dir) | frequent_words(train_text, args.top_words)
    pools = name_pools(read_instances(args.wordnet_dir), exclude, args.seed)
    sentences = name_sentences(pools, args.num_names, args.seed, read_text(train_text))
    jobs = make_jobs(sentences, args)
    names = {job.key: {"names": list(s.names)} for job, s in zip(jobs, sentences, strict=True)}
    work = partial(synthesise, max_seconds=args.max_seconds)
    if args.nj <= 1:
        results = [work(job) for job in jobs]
    else:
        with Pool(args.nj) as pool:
            results = pool.map(work, jobs, chunksize=4)
    for job, _, dropped in results:
        if dropped:
            log.warning("%s dropped: %s: %s", job.key, dropped, job.sentence)
    kept = [(job, duration) for job, duration, dropped in results if not dropped]
    write_split(args.data_dir / SPLIT, kept, names)
    distinct = {n for job, _ in kept for n in names[job.key]["names"]}
    minutes = sum(d for _, d in kept) / 60
    voices = len({job.voice for job, _ in kept})
    log.info(
        "%s: %d utterances, %.1f min, %d voices, %d distinct names",
        *(SPLIT, len(kept), minutes, voices, len(distinct)),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
