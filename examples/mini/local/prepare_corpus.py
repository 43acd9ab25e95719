"""Synthesise the mini corpus: fortunes and WordNet examples read by five families of voices.

    python local/prepare_corpus.py --data_dir data --num_train 8000 --num_dev 100 \
        --num_test 100 --num_heldout 100 --nj 2

writes, for each split in train, dev, test and heldout,

    DATA_DIR/wav/SPLIT/<key>-<hash>.wav     16 kHz mono 16-bit; <hash> names the settings
    DATA_DIR/SPLIT/{wav.scp,text,utt2spk,spk2utt,utt2dur}   Kaldi data dir, sorted by key
    DATA_DIR/SPLIT/data.jsonl               {"key","wav","txt","duration","voice","speed",
                                             "pitch","sentence"[,"augment"]} per line

Voices (local/voices.py; the speaker of an utterance is its voice, and keys start with it, so
sorting by key and by speaker agree, as Kaldi wants): espeak-ng's accents x variants
(formant), MBROLA's 4 English voices and Festival's kal/ked (diphone), SVOX Pico (en-US,
en-GB), flite's kal16 (diphone) and awb/rms/slt (clustergen), Festival's slt (HTS). Train draws
a family by --family_shares, then a voice of it. Held-out voices (--heldout_voices) never
occur in train; dev and test take half their utterances from held-out voices, half from
training voices, cycling through the families.

Sentences: each text source (--text_sources: Debian's fortunes, local/fortune_sentences.py, and
WordNet's examples, local/wordnet_sentences.py) is shuffled once, and the sources take turns,
so every split reads them in equal shares. Test, dev and train take disjoint slices in that
order, so growing --num_train keeps dev, test and the first training utterances as they were.
`heldout` reads another text source, the Harvard sentences (local/heldout_sentences.py), with
held-out voices only: a test of new sentences and new voices at once.

Train utterances get a random acoustic chain (local/augment.py: speed, microphone tilt, room,
noise, phone band, codec, level) with probability --augment_share; dev, test and heldout are
clean.

A wav is written under a temporary name and renamed when complete, and its name carries a
hash of everything that shapes it, so a rerun reuses what exists and redoes only the rest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import sys
from dataclasses import dataclass
from functools import partial
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from augment import Augment, apply, draw
from espeak import speak
from fortune_sentences import FORTUNE_DIR, fortune_sentences, transcript
from heldout_sentences import harvard_sentences
from tqdm import tqdm
from voices import speak_any
from wordnet_sentences import WORDNET_DIR, wordnet_sentences

SAMPLE_RATE = 16000
SPLITS = ("train", "dev", "test", "heldout")
# espeak-ng's English accents, and the voice variants (timbre, pitch range) applied to them.
# No variant name is a prefix of another, so no voice name is (Kaldi's sort order).
ACCENTS = (
    "en-us",
    "en",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
VARIANTS = tuple(f"m{i}" for i in range(1, 9)) + tuple(f"f{i}" for i in range(1, 6))
VARIANTS += ("croak", "klatt")
MBROLA = ("mb-us1", "mb-us2", "mb-us3", "mb-en1")
# Voice families (local/voices.py): formant, diphone and statistical-parametric voices.
FAMILIES = {
    "espeak": tuple(f"{a}+{v}" for a in ACCENTS for v in VARIANTS),
    "mbrola": MBROLA,
    "pico": ("pico-en-US", "pico-en-GB"),
    "flite": ("flite-kal16", "flite-awb", "flite-rms", "flite-slt"),
    "festival": ("fest-kal", "fest-ked", "fest-rab", "fest-slt-hts"),
}
SHARES = "espeak=0.3 mbrola=0.15 pico=0.2 flite=0.25 festival=0.1"
HELDOUT = "mb-us2 +f4 pico-en-GB flite-awb fest-rab"
TEXT_SOURCES = ("fortunes", "wordnet")

log = logging.getLogger("prepare_corpus")


@dataclass(frozen=True)
class Job:
    """One utterance to synthesise."""

    key: str
    split: str
    voice: str
    speed: int  # words per minute (espeak-ng's -s; other engines: speed / 175 of their own)
    pitch: int  # 0-99 (espeak-ng's -p; other engines: 1 + (pitch - 50) / 100 of their own)
    sentence: str  # what the voice reads
    txt: str  # what the model should write
    wav: str
    augment: Augment = Augment()  # the acoustic chain baked into the wav (none: clean)


@dataclass(frozen=True)
class Voices:
    """Per family (FAMILIES' order), the voices heard in training and those held out."""

    seen: dict[str, tuple[str, ...]]
    heldout: dict[str, tuple[str, ...]]

    @classmethod
    def build(cls, heldout: str, families: tuple[str, ...] = tuple(FAMILIES)) -> Voices:
        """`heldout`: voices (`mb-us2`, `en-us+m3`) and espeak-ng variants (`+f4`),
        space-separated; `families`: the families to use."""
        names = heldout.split()
        variants = {n[1:] for n in names if n.startswith("+")}
        whole = {n for n in names if not n.startswith("+")}
        unknown = variants - set(VARIANTS)
        if unknown:
            raise SystemExit(f"--heldout_voices: unknown variants {sorted(unknown)}")
        unknown = whole - {v for f in FAMILIES.values() for v in f}
        if unknown:
            raise SystemExit(f"--heldout_voices: unknown voices {sorted(unknown)}")

        def out(v: str) -> bool:
            return v in whole or ("+" in v and v.split("+")[1] in variants)

        seen = {f: tuple(v for v in FAMILIES[f] if not out(v)) for f in families}
        held = {f: tuple(v for v in FAMILIES[f] if out(v)) for f in families}
        return cls(seen, held)


def parse_shares(text: str, families: tuple[str, ...]) -> dict[str, float]:
    """`espeak=0.3 pico=0.2 ...` -> {family: share}, normalised over `families`."""
    shares = {}
    for item in text.split():
        name, _, value = item.partition("=")
        if name not in FAMILIES or not value:
            raise SystemExit(
                f"--family_shares: expected FAMILY=SHARE with FAMILY in "
                f"{list(FAMILIES)}, got {item!r}"
            )
        shares[name] = float(value)
    shares = {f: w for f, w in shares.items() if f in families and w > 0}
    if not shares:
        raise SystemExit(f"--family_shares {text!r}: no share left for families {families}")
    total = sum(shares.values())
    return {f: w / total for f, w in shares.items()}


def pick_voice(rng: random.Random, pools: dict[str, tuple[str, ...]], family: str) -> str:
    """A voice of `family` from `pools`, or of the next family that has one."""
    order = list(pools)
    start = order.index(family)
    for f in order[start:] + order[:start]:
        if pools[f]:
            return rng.choice(pools[f])
    raise SystemExit("no voice left to choose from; check --heldout_voices")


def take_turns(sources: dict[str, list[str]], seed: int) -> list[str]:
    """Each source shuffled (seeded by its name), then one sentence of each in turn, as long
    as every source has one left: equal shares at any length of the list."""
    shuffled = []
    for name, sentences in sources.items():
        order = sentences[:]
        random.Random(f"{seed}:{name}").shuffle(order)
        shuffled.append(order)
    return [s for group in zip(*shuffled) for s in group]


def make_plan(
    args: argparse.Namespace,
    sources: dict[str, list[str]],
    heldout_text: list[str] | None = None,
) -> list[Job]:
    """Every utterance of every split, reproducibly from `args.seed`.

    train, dev and test read `sources` ({name: sentences}) in turns; `heldout` reads
    `heldout_text` (another source), with held-out voices only.
    """
    sizes = {"test": args.num_test, "dev": args.num_dev, "train": args.num_train}
    order = take_turns(sources, args.seed)
    if sum(sizes.values()) > len(order):
        raise SystemExit(
            f"{sum(sizes.values())} utterances asked for, but the text sources give only "
            f"{len(order)} in equal shares ({describe(sources)})"
        )
    slices = {}
    start = 0
    for split in ("test", "dev", "train"):  # held-out sets first: --num_train leaves them be
        slices[split] = order[start : start + sizes[split]]
        start += sizes[split]
    if args.num_heldout:
        text = (heldout_text or [])[:]
        if len(text) < args.num_heldout:
            raise SystemExit(f"--num_heldout {args.num_heldout}: only {len(text)} sentences")
        random.Random(args.seed).shuffle(text)
        slices["heldout"] = text[: args.num_heldout]
    families = tuple(args.families.split())
    voices = Voices.build(args.heldout_voices, families)
    shares = parse_shares(args.family_shares, families)
    data_dir = Path(args.data_dir).resolve()
    jobs: list[Job] = []
    for split, chosen in slices.items():
        rng = random.Random(f"{args.seed}:{split}")
        aug_rng = random.Random(f"{args.seed}:{split}:augment")
        for i, sentence in enumerate(chosen):
            if split == "train":
                voice = pick_voice(rng, voices.seen, draw_family(rng, shares))
            elif split == "heldout":  # every held-out family in turn
                voice = pick_voice(rng, voices.heldout, families[i % len(families)])
            else:  # cycle: seen espeak, held-out espeak, seen MBROLA, held-out MBROLA, ...
                pools = voices.heldout if i % 2 else voices.seen
                voice = pick_voice(rng, pools, families[(i // 2) % len(families)])
            speed = rng.randint(args.min_speed, args.max_speed)
            pitch = rng.randint(args.min_pitch, args.max_pitch)
            augment = draw(aug_rng, args.augment_share) if split == "train" else Augment()
            jobs.append(new_job(data_dir, split, i, voice, speed, pitch, sentence, augment))
    return jobs


def new_job(
    data_dir: Path,
    split: str,
    index: int,
    voice: str,
    speed: int,
    pitch: int,
    sentence: str,
    augment: Augment = Augment(),
) -> Job:
    """The `index`-th utterance of `split`: its key (`<voice>-<split>-<index>`), transcript, and
    wav under `data_dir`/wav/`split`, named with a hash of everything that shapes its audio."""
    key = f"{voice}-{split}-{index:05d}"
    settings = f"{voice}|{speed}|{pitch}|{SAMPLE_RATE}|{sentence}"
    if augment.spec():
        settings += f"|{augment.spec()}"
    digest = hashlib.sha1(settings.encode()).hexdigest()[:8]
    wav = data_dir / "wav" / split / f"{key}-{digest}.wav"
    txt = transcript(sentence)
    return Job(key, split, voice, speed, pitch, sentence, txt, str(wav), augment)


def draw_family(rng: random.Random, shares: dict[str, float]) -> str:
    r, acc = rng.random(), 0.0
    for family, share in shares.items():
        acc += share
        if r < acc:
            return family
    return family


def read_aloud(job: Job) -> tuple[np.ndarray, int]:
    """The job's sentence as int16 samples and their rate, from its voice's engine."""
    if job.voice in FAMILIES["mbrola"] or "+" in job.voice:
        return speak(job.sentence, job.voice, job.speed, job.pitch)
    return speak_any(job.voice, job.sentence, job.speed / 175, 1 + (job.pitch - 50) / 100)


def synthesise(job: Job, max_seconds: float) -> tuple[Job, float, str | None]:
    """Write `job.wav` unless it exists -> (job, duration in seconds, why it is dropped).

    A recording that is too long, too short or silent is not written (and so not kept);
    the reason is returned instead of None. A failing espeak-ng is an error.
    """
    wav = Path(job.wav)
    if wav.is_file():
        return job, sf.info(str(wav)).duration, None
    try:
        audio, sr = read_aloud(job)
    except RuntimeError as e:
        raise RuntimeError(f"{job.key}: {e}") from None
    # espeak-ng writes 22.05 kHz (MBROLA voices 16 kHz); int16 in, int16 out: soxr clips.
    if sr != SAMPLE_RATE:
        audio = soxr.resample(audio, sr, SAMPLE_RATE)
    audio = apply(audio, SAMPLE_RATE, job.augment, job.key)
    duration = len(audio) / SAMPLE_RATE
    if duration > max_seconds:
        return job, duration, f"{duration:.1f} s is over --max_seconds {max_seconds}"
    if duration < 0.5 or abs(audio.astype("int32")).max() < 100:
        return job, duration, f"{duration:.2f} s, silent or too short"
    wav.parent.mkdir(parents=True, exist_ok=True)
    tmp = wav.with_name(f".{wav.name}.{os.getpid()}.tmp")
    sf.write(str(tmp), audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, wav)
    return job, duration, None


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def write_split(
    split_dir: Path, kept: list[tuple[Job, float]], extra: dict[str, dict] | None = None
) -> None:
    """Kaldi files and data.jsonl for one split, every file sorted by key (C locale);
    `extra`: more fields for some utterances' data.jsonl rows, by key."""
    split_dir.mkdir(parents=True, exist_ok=True)
    kept = sorted(kept, key=lambda jd: jd[0].key)
    spk2utt: dict[str, list[str]] = {}
    for job, _ in kept:
        spk2utt.setdefault(job.voice, []).append(job.key)
    _write(split_dir / "wav.scp", [f"{j.key} {j.wav}" for j, _ in kept])
    _write(split_dir / "text", [f"{j.key} {j.txt}" for j, _ in kept])
    _write(split_dir / "utt2spk", [f"{j.key} {j.voice}" for j, _ in kept])
    _write(split_dir / "utt2dur", [f"{j.key} {d:.3f}" for j, d in kept])
    _write(split_dir / "spk2utt", [f"{s} {' '.join(u)}" for s, u in sorted(spk2utt.items())])
    rows = []
    for job, duration in kept:
        row = {"key": job.key, "wav": job.wav, "txt": job.txt, "duration": round(duration, 3)}
        row.update(voice=job.voice, speed=job.speed, pitch=job.pitch, sentence=job.sentence)
        if job.augment.spec():
            row["augment"] = job.augment.spec()
        row.update((extra or {}).get(job.key, {}))
        rows.append(json.dumps(row, ensure_ascii=False))
    _write(split_dir / "data.jsonl", rows)


def read_sources(args: argparse.Namespace) -> dict[str, list[str]]:
    """{name: sentences} for --text_sources; a sentence is in one source only."""
    names = args.text_sources.split()
    unknown = set(names) - set(TEXT_SOURCES)
    if unknown or not names:
        raise SystemExit(
            f"--text_sources: expected some of {list(TEXT_SOURCES)}, got {args.text_sources!r}"
        )
    sources: dict[str, list[str]] = {}
    for name in names:
        seen = (transcript(s) for v in sources.values() for s in v)
        if name == "fortunes":
            sources[name] = fortune_sentences(args.fortune_dir, seen)
        else:
            sources[name] = wordnet_sentences(args.wordnet_dir, seen)
    return sources


def describe(sources: dict[str, list[str]]) -> str:
    """How many sentences each source gives: `15606 from fortunes, 33906 from wordnet`."""
    return ", ".join(f"{len(v)} from {k}" for k, v in sources.items())


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", default="data", help="where to write (default: data)")
    p.add_argument("--num_train", type=int, default=3000)
    p.add_argument("--num_dev", type=int, default=100)
    p.add_argument("--num_test", type=int, default=100)
    p.add_argument("--nj", type=int, default=2, help="synthesis processes (default: 2)")
    p.add_argument("--seed", type=int, default=777)
    p.add_argument(
        "--text_sources",
        default=" ".join(TEXT_SOURCES),
        help=f"what train, dev and test read, in equal shares (default: "
        f"'{' '.join(TEXT_SOURCES)}')",
    )
    p.add_argument("--fortune_dir", type=Path, default=FORTUNE_DIR)
    p.add_argument("--wordnet_dir", type=Path, default=WORDNET_DIR)
    p.add_argument(
        "--heldout_voices",
        default=HELDOUT,
        help=f"voices and +variants never used in train (default: '{HELDOUT}')",
    )
    p.add_argument(
        "--families",
        default=" ".join(FAMILIES),
        help=f"voice families to use (default: '{' '.join(FAMILIES)}')",
    )
    p.add_argument(
        "--family_shares",
        default=SHARES,
        help=f"of train, per family (normalised; default: '{SHARES}')",
    )
    p.add_argument(
        "--num_heldout",
        type=int,
        default=100,
        help="utterances of the `heldout` set: Harvard sentences (local/heldout_sentences.py), "
        "held-out voices only (default: 100; 0: none)",
    )
    p.add_argument(
        "--download_dir",
        type=Path,
        default=Path("download"),
        help="where the Harvard sentences' Debian package is unpacked if it is not installed",
    )
    p.add_argument("--min_speed", type=int, default=130, help="words per minute")
    p.add_argument("--max_speed", type=int, default=200)
    p.add_argument("--min_pitch", type=int, default=30, help="espeak-ng -p, 0-99")
    p.add_argument("--max_pitch", type=int, default=70)
    p.add_argument(
        "--augment_share",
        type=float,
        default=0.7,
        help="of train: utterances given a random acoustic chain (local/augment.py; default 0.7)",
    )
    p.add_argument("--max_seconds", type=float, default=12.0, help="longer ones are dropped")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sources = read_sources(args)
    every = [s for sentences in sources.values() for s in sentences]
    heldout_text = harvard_sentences(args.download_dir, every) if args.num_heldout else None
    jobs = make_plan(args, sources, heldout_text)
    log.info("sentences: %s; %d utterances planned", describe(sources), len(jobs))
    work = partial(synthesise, max_seconds=args.max_seconds)
    results: list[tuple[Job, float, str | None]] = []
    with tqdm(total=len(jobs), desc="synthesising", unit="utt", file=sys.stderr) as bar:
        if args.nj <= 1:
            for job in jobs:
                results.append(work(job))
                bar.update()
        else:
            with Pool(args.nj) as pool:
                for result in pool.imap_unordered(work, jobs, chunksize=8):
                    results.append(result)
                    bar.update()
    for job, _, dropped in sorted(results, key=lambda r: r[0].key):
        if dropped:
            log.warning("%s dropped: %s: %s", job.key, dropped, job.sentence)
    for split in SPLITS:
        if split == "heldout" and not args.num_heldout:
            continue
        kept = [(j, d) for j, d, dropped in results if j.split == split and not dropped]
        write_split(Path(args.data_dir) / split, kept)
        hours = sum(d for _, d in kept) / 3600
        voices = len({j.voice for j, _ in kept})
        log.info("%s: %d utterances, %.2f h, %d voices", split, len(kept), hours, voices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
