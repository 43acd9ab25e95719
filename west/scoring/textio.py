"""Read Kaldi ``text`` files: one ``<utt-id> <transcript>`` per line, UTF-8.

The reader is west.data.kaldi's, the one WeST reads every ``<key> <value>`` file with (it
needs no torch): a line is split at its first run of whitespace; the transcript may be empty
(a key alone on its line); blank lines are skipped. Anything else that is wrong (bytes that are
not UTF-8, a key seen twice) is an error that names the file and the line, because a silently
dropped or overwritten utterance changes the score without anyone noticing.

The path ``-`` reads standard input (named ``<stdin>`` in errors).
"""

from __future__ import annotations

from pathlib import Path

from west.data.kaldi import STDIN, read_kaldi_table
from west.data.kaldi import DataError as TextFileError

__all__ = ["STDIN", "TextFileError", "read_kaldi_text"]


def read_kaldi_text(path: str | Path) -> dict[str, str]:
    """Return ``{utt_id: transcript}`` in file order.

    Raises:
        TextFileError: on non-UTF-8 bytes or a duplicate key (message: ``file:line: what``).
        OSError: if the file cannot be opened.
    """
    return {key: text for key, (_, text) in read_kaldi_table(path, allow_empty_value=True).items()}
