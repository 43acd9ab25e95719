"""Read Kaldi ``text`` files: one ``<utt-id> <transcript>`` per line, UTF-8.

A line is split at its first run of whitespace; the transcript may be empty (a key alone on
its line). Blank lines are skipped. Anything else that is wrong (bytes that are not UTF-8, a key
seen twice) is an error that names the file and the line, because a silently dropped or
overwritten utterance changes the score without anyone noticing.

The path ``-`` reads standard input (named ``<stdin>`` in errors).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

STDIN = "-"


class TextFileError(ValueError):
    """A Kaldi text file that cannot be read; the message names the file and line."""


@contextmanager
def _open_bytes(path: str | Path) -> Iterator[tuple[str, BinaryIO]]:
    if str(path) == STDIN:
        yield "<stdin>", sys.stdin.buffer
    else:
        with open(path, "rb") as f:
            yield str(path), f


def read_kaldi_text(path: str | Path) -> dict[str, str]:
    """Return ``{utt_id: transcript}`` in file order.

    Raises:
        TextFileError: on non-UTF-8 bytes or a duplicate key (message: ``file:line: what``).
        OSError: if the file cannot be opened.
    """
    texts: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    with _open_bytes(path) as (path, f):
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise TextFileError(
                    f"{path}:{lineno}: expected UTF-8 text, found byte 0x{raw[e.start]:02x} "
                    f"at column {e.start + 1}"
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # tolerate a UTF-8 byte-order mark
            parts = line.split(maxsplit=1)
            if not parts:
                continue
            key = parts[0]
            if key in first_seen:
                raise TextFileError(
                    f"{path}:{lineno}: duplicate utterance id '{key}' "
                    f"(first seen on line {first_seen[key]}); expected each id once"
                )
            first_seen[key] = lineno
            texts[key] = parts[1].strip() if len(parts) > 1 else ""
    return texts
