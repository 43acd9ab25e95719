"""Held-out English sentences: the 720 Harvard sentences, as shipped by Debian's `r-cran-stringr`.

The Harvard sentences (IEEE Recommended Practice for Speech Quality Measurements, 1969:
72 lists of 10 phonetically balanced sentences written to be read aloud) are stringr's
`sentences` data set. Debian ships it in R's lazy-load database (data/Rdata.rdx +
Rdata.rdb); this module reads it in pure Python (R itself is not needed), so the .deb can
simply be unpacked instead of installed:

    apt-get install r-cran-stringr          # or, without R:
    apt-get download r-cran-stringr && dpkg-deb -x r-cran-stringr_*.deb DIR
    python local/heldout_sentences.py [--stringr_dir DIR/usr/lib/R/site-library/stringr]

Each sentence is kept only if fortune_sentences.clean_sentence keeps it and it has 4 to 20
words; sentences whose transcript is also a fortune sentence's are dropped.
"""

from __future__ import annotations

import argparse
import gzip
import struct
import subprocess
import zlib
from pathlib import Path

from fortune_sentences import fortune_sentences, keep_unique, transcript

STRINGR_DIR = Path("/usr/lib/R/site-library/stringr")
SOURCE = STRINGR_DIR / "data" / "Rdata.rdb"  # the `sentences` object in it
MIN_WORDS = 4

# R serialisation (XDR) types this reader knows.
_NIL, _REF, _SYM, _LIST, _CHAR, _LGL, _INT, _STR, _VEC = 254, 255, 1, 2, 9, 10, 13, 16, 19


class _RReader:
    """Reads the subset of R's XDR serialisation that a data set's index and a character
    vector use: vectors (logical, integer, character, list), pairlists, symbols."""

    def __init__(self, data: bytes) -> None:
        if data[:2] != b"X\n":
            raise ValueError("not an R XDR serialisation")
        self.data, self.pos, self.refs = data, 2, []
        version = self._int()
        self.pos += 8  # R version that wrote it, oldest version that reads it
        if version == 3:
            self.pos += 4 + self._int_at(self.pos)  # native encoding name

    def _int_at(self, pos: int) -> int:
        return struct.unpack_from(">i", self.data, pos)[0]

    def _int(self) -> int:
        value = self._int_at(self.pos)
        self.pos += 4
        return value

    def read(self):  # -> str | list | dict | None
        flags = self._int()
        kind, has_attr, has_tag = flags & 0xFF, flags & 512, flags & 1024
        if kind == _NIL:
            return None
        if kind == _REF:
            return self.refs[(flags >> 8 or self._int()) - 1]
        if kind == _SYM:
            name = self.read()
            self.refs.append(name)
            return name
        if kind == _CHAR:
            n = self._int()
            if n < 0:
                return None  # NA_character_
            self.pos += n
            return self.data[self.pos - n : self.pos].decode("utf-8")
        if kind == _LIST:  # a pairlist: tag -> value
            if has_attr:
                self.read()  # a pairlist's own attributes: not used
            tag = self.read() if has_tag else None
            head = {tag: self.read()}
            rest = self.read()
            return head | (rest or {})
        if kind in (_LGL, _INT):
            n = self._int()
            value = [self._int() for _ in range(n)]
        elif kind in (_STR, _VEC):
            value = [self.read() for _ in range(self._int())]
        else:
            raise ValueError(f"R type {kind} is not supported by this reader")
        names = (self.read() or {}).get("names") if has_attr else None
        return dict(zip(names, value, strict=True)) if names else value


def read_r_data(data_dir: Path, name: str) -> list[str]:
    """The character vector `name` from an R package's lazy-load data (Rdata.rdx/.rdb)."""
    index = _RReader(gzip.decompress((data_dir / "Rdata.rdx").read_bytes())).read()
    offset, length = index["variables"][name]
    if index["compressed"] not in ([1], 1):
        raise ValueError(f"{data_dir}/Rdata.rdb: only zlib-compressed data is supported")
    blob = (data_dir / "Rdata.rdb").read_bytes()[offset : offset + length]
    value = _RReader(zlib.decompress(blob[4:])).read()  # 4 bytes: the unpacked length
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise ValueError(f"{data_dir}: {name} is not a character vector")
    return value


def heldout_sentences(
    stringr_dir: Path = STRINGR_DIR, exclude: list[str] | None = None
) -> list[str]:
    """The kept Harvard sentences, in list order, each once; none whose transcript is one of
    `exclude`'s (default: the fortune sentences)."""
    raw = read_r_data(stringr_dir / "data", "sentences")
    exclude = fortune_sentences() if exclude is None else exclude
    seen = (transcript(s) for s in exclude)
    return keep_unique((" ".join(s.split()) for s in raw), seen, MIN_WORDS)


def stringr_dir(download_dir: Path) -> Path:
    """stringr's folder: the installed one, or the Debian package unpacked in `download_dir`
    (fetched with `apt-get download` the first time: no root, no R)."""
    if (STRINGR_DIR / "data" / "Rdata.rdb").is_file():
        return STRINGR_DIR
    unpacked = download_dir / "r-cran-stringr"
    found = unpacked / STRINGR_DIR.relative_to("/")
    if (found / "data" / "Rdata.rdb").is_file():
        return found
    download_dir.mkdir(parents=True, exist_ok=True)
    cmd = ["apt-get", "download", "r-cran-stringr"]
    proc = subprocess.run(cmd, cwd=download_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} (in {download_dir}) failed: {proc.stderr.strip()}; install "
            f"Debian's r-cran-stringr, or unpack its .deb into {unpacked} (dpkg-deb -x)"
        )
    deb = max(download_dir.glob("r-cran-stringr_*.deb"), key=lambda p: p.stat().st_mtime)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
    return found


def harvard_sentences(download_dir: Path, exclude: list[str] | None = None) -> list[str]:
    """heldout_sentences() from the installed or downloaded r-cran-stringr."""
    return heldout_sentences(stringr_dir(download_dir), exclude)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stringr_dir", type=Path, default=STRINGR_DIR)
    args = parser.parse_args()
    for sentence in heldout_sentences(args.stringr_dir):
        print(sentence)


if __name__ == "__main__":
    main()
