"""Kaldi tables and data dirs: the one reader of `<key> <value>` files, and data dirs made
from a corpus (audio files paired with transcripts, gaps reported).

`read_kaldi_table` reads every `<key> <value>` file WeST takes (wav.scp, text, utt2spk,
hypotheses): UTF-8, split at the first whitespace, blank lines skipped, a key twice refused,
each error naming the file and the line. This module needs no torch, so `west.scoring` reads
its text files with it too.

A recipe's `local/` finds a corpus's audio files and transcripts; everything after that
is here, shared by all corpora. Each data dir gets

    wav.scp     <key> <absolute audio path>
    text        <key> <transcript>
    utt2spk     <key> <speaker>
    spk2utt     <speaker> <key> <key> ...
    data.jsonl  {"key": ..., "wav": ..., "txt": ...}   (what west-train and west-recognize read)

all UTF-8 and sorted by key (code-point order, which is `LC_ALL=C sort`'s order for UTF-8).
An utterance with audio but no transcript, or a transcript with no audio, is left out
and counted in the report, never dropped silently.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

STDIN = "-"  # the path that reads standard input


class DataError(ValueError):
    """Bad data; the message names the file, the line or key, and what was expected."""


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) for each non-blank line of a UTF-8 file.

    `-` reads standard input (named `<stdin>` in errors); a byte-order mark is dropped.
    Raises DataError naming the file, line and byte where the text is not UTF-8.
    """
    if str(path) == STDIN:
        yield from _decoded("<stdin>", sys.stdin.buffer)
        return
    with open(path, "rb") as f:
        yield from _decoded(str(path), f)


def _decoded(name: str, f) -> Iterator[tuple[int, str]]:
    for n, raw in enumerate(f, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(
                f"{name}:{n}: expected UTF-8 text, found byte 0x{raw[e.start]:02x} "
                f"at column {e.start + 1}"
            ) from None
        if n == 1:
            text = text.removeprefix("\ufeff")
        if text.strip():
            yield n, text.rstrip("\r\n")


def read_kaldi_table(
    path: str | Path, allow_empty_value: bool = False
) -> dict[str, tuple[int, str]]:
    """`<key> <value>` lines, split at the first whitespace -> {key: (line, value)}, in file
    order; the value has no surrounding whitespace. A key alone on its line is an error unless
    `allow_empty_value` (then its value is ""); a key twice is always one."""
    name = "<stdin>" if str(path) == STDIN else str(path)
    table: dict[str, tuple[int, str]] = {}
    for n, text in text_lines(path):
        fields = text.strip().split(maxsplit=1)
        if len(fields) == 1 and not allow_empty_value:
            raise DataError(f"{name}:{n}: one field {fields[0]!r}; expected '<key> <value>'")
        key = fields[0]
        if key in table:
            raise DataError(
                f"{name}:{n}: duplicate utterance id {key!r} (first seen on line "
                f"{table[key][0]}); expected each id once"
            )
        table[key] = (n, fields[1] if len(fields) > 1 else "")
    return table


# Transcript rewrites for training targets, chosen by name (`tools/normalize_text.py`).
TEXT_NORMALIZERS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "remove_spaces": lambda s: "".join(s.split()),
    "squeeze_spaces": lambda s: " ".join(s.split()),
}


@dataclass(frozen=True)
class Entry:
    key: str
    wav: str
    txt: str
    speaker: str


@dataclass
class SetReport:
    """What pairing found for one data dir."""

    out_dir: Path
    entries: list[Entry] = field(default_factory=list)
    without_text: list[str] = field(default_factory=list)  # audio keys with no transcript


@dataclass
class Pairing:
    sets: list[SetReport]
    without_audio: list[str]  # transcript keys with audio in none of the sets

    def report(self, examples: int = 3) -> list[str]:
        """Human-readable lines: counts, and a few example keys for each gap."""

        def eg(keys: list[str]) -> str:
            more = ", ..." if len(keys) > examples else ""
            return ", ".join(keys[:examples]) + more

        lines = []
        for s in self.sets:
            line = f"{s.out_dir}: {len(s.entries)} utterances"
            if s.without_text:
                line += (
                    f"; {len(s.without_text)} audio file(s) without transcript, left out"
                    f" (e.g. {eg(s.without_text)})"
                )
            lines.append(line)
        if self.without_audio:
            where = ", ".join(str(s.out_dir) for s in self.sets)
            lines.append(
                f"{len(self.without_audio)} transcript(s) without audio in {where}, left out"
                f" (e.g. {eg(self.without_audio)})"
            )
        return lines


def read_audio_list(path: str | Path) -> dict[str, str]:
    """One audio path per line (as `find` prints them) -> {key: absolute path}.

    The key is the file name without its extension, as corpora name their utterances.
    """
    path = Path(path)
    audio: dict[str, str] = {}
    lines: dict[str, int] = {}
    for n, wav in text_lines(path):
        key = Path(wav).name.split(".", 1)[0]
        if key in audio:
            raise DataError(
                f"{path}:{n}: audio key {key!r} again ({wav}); first on line {lines[key]} "
                f"({audio[key]}); expected one file per utterance"
            )
        audio[key] = os.path.abspath(wav)
        lines[key] = n
    return audio


def read_transcripts(paths: Iterable[str | Path]) -> dict[str, str]:
    """`<key> <transcript>` lines from one or more files; a key twice is an error."""
    texts: dict[str, str] = {}
    origin: dict[str, str] = {}
    for path in paths:
        for key, (n, txt) in read_kaldi_table(Path(path), allow_empty_value=True).items():
            if key in texts:
                raise DataError(f"{path}:{n}: transcript key {key!r} again; first in {origin[key]}")
            texts[key] = txt.strip()
            origin[key] = f"{path}:{n}"
    return texts


def speaker_function(regex: str | None) -> Callable[[str], str]:
    """Speaker of a key: the regex's first group (or whole match) searched in the key."""
    if not regex:
        return lambda key: key
    pattern = re.compile(regex)

    def speaker(key: str) -> str:
        m = pattern.search(key)
        if not m:
            raise DataError(f"key {key!r}: no speaker found with --speaker_regex {regex!r}")
        return m.group(1) if pattern.groups else m.group(0)

    return speaker


def pair(
    sets: dict[str | Path, dict[str, str]],
    texts: dict[str, str],
    speaker: Callable[[str], str] = lambda key: key,
) -> Pairing:
    """Pair each set's audio ({out_dir: {key: wav}}) with the transcripts.

    The transcripts may cover several sets (AISHELL ships one file for train, dev and
    test); those with audio in none of them are reported once. An empty transcript
    counts as none.
    """
    reports, seen = [], {}
    for out_dir, audio in sets.items():
        report = SetReport(Path(out_dir))
        for key in sorted(audio):
            if key in seen:
                raise DataError(f"audio key {key!r} is in both {seen[key]} and {out_dir}")
            seen[key] = out_dir
            txt = texts.get(key, "")
            if txt:
                report.entries.append(Entry(key, audio[key], txt, speaker(key)))
            else:
                report.without_text.append(key)
        reports.append(report)
    without_audio = sorted(k for k, t in texts.items() if t and k not in seen)
    return Pairing(reports, without_audio)


def _write(path: Path, lines: Iterable[str]) -> None:
    """Write whole or not at all: a killed run never leaves a half-written file behind."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    os.replace(tmp, path)


def write_data_dir(out_dir: str | Path, entries: list[Entry]) -> None:
    """wav.scp, text, utt2spk, spk2utt and data.jsonl, sorted by key."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for e in entries:
        for name, value in (("key", e.key), ("speaker", e.speaker)):
            if value.split() != [value]:
                raise DataError(
                    f"{out_dir}: {name} {value!r} of utterance {e.key!r} is empty or has "
                    "whitespace; expected one token"
                )
        if "\n" in e.txt or "\r" in e.txt:
            raise DataError(f"{out_dir}: transcript of {e.key!r} has a line break")
    entries = sorted(entries, key=lambda e: e.key)
    _write(out_dir / "wav.scp", (f"{e.key} {e.wav}" for e in entries))
    _write(out_dir / "text", (f"{e.key} {e.txt}" for e in entries))
    _write(out_dir / "utt2spk", (f"{e.key} {e.speaker}" for e in entries))
    spk2utt: dict[str, list[str]] = {}
    for e in entries:
        spk2utt.setdefault(e.speaker, []).append(e.key)
    _write(out_dir / "spk2utt", (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)))
    _write(
        out_dir / "data.jsonl",
        (
            json.dumps({"key": e.key, "wav": e.wav, "txt": e.txt}, ensure_ascii=False)
            for e in entries
        ),
    )


def make_data_dirs(pairing: Pairing) -> None:
    """Write every set of a pairing, as the corpus ships its transcripts."""
    for s in pairing.sets:
        write_data_dir(s.out_dir, s.entries)
        # An original kept by an earlier normalisation would no longer match this text.
        (s.out_dir / "text.orig").unlink(missing_ok=True)


def read_data_dir(data_dir: str | Path, text_file: str = "text") -> list[Entry]:
    """The entries of a data dir written by `write_data_dir` (wav.scp, `text_file`, utt2spk)."""
    data_dir = Path(data_dir)
    wavs = read_kaldi_table(data_dir / "wav.scp")
    texts = read_kaldi_table(data_dir / text_file, allow_empty_value=True)
    spk_path = data_dir / "utt2spk"
    spks = read_kaldi_table(spk_path) if spk_path.is_file() else {}
    missing = sorted(set(wavs) ^ set(texts))
    if missing:
        raise DataError(
            f"{data_dir}: wav.scp and {text_file} differ in {len(missing)} key(s), "
            f"e.g. {missing[:3]}; expected the same keys in both"
        )
    return [
        Entry(key, wav, texts[key][1], spks.get(key, (0, key))[1]) for key, (_, wav) in wavs.items()
    ]


def normalize_data_dir(data_dir: str | Path, normalizers: list[str]) -> int:
    """Rewrite `text` and `data.jsonl` with normalised transcripts; returns the count.

    The transcripts as the corpus ships them are kept in `text.orig` and are what is
    normalised, so running this twice (or with other normalisers) starts from them.
    """
    unknown = [n for n in normalizers if n not in TEXT_NORMALIZERS]
    if unknown:
        raise ValueError(f"unknown normaliser(s) {unknown}; known: {sorted(TEXT_NORMALIZERS)}")
    data_dir = Path(data_dir)
    orig = data_dir / "text.orig"
    if not orig.is_file():
        _write(orig, (data_dir / "text").read_text(encoding="utf-8").splitlines())
    entries = read_data_dir(data_dir, text_file="text.orig")
    out = []
    for e in entries:
        txt = e.txt
        for name in normalizers:
            txt = TEXT_NORMALIZERS[name](txt)
        if not txt.strip():
            raise DataError(f"{orig}: transcript of {e.key!r} is empty after {normalizers}")
        out.append(Entry(e.key, e.wav, txt, e.speaker))
    write_data_dir(data_dir, out)
    return len(out)
