"""The one `<key> <value>` reader: data lists and scoring read a file the same way."""

from __future__ import annotations

import pytest

from west.data.kaldi import DataError, read_kaldi_table
from west.scoring.textio import TextFileError, read_kaldi_text


def test_scoring_and_data_read_a_file_alike(tmp_path):
    path = tmp_path / "text"
    # A byte-order mark, CRLF ends, a blank line, runs of spaces and tabs, an empty value.
    path.write_bytes("\ufeffu1  hello\tworld \r\n\n  u2 x  y\r\nu3\n".encode())
    table = read_kaldi_table(path, allow_empty_value=True)
    assert table == {"u1": (1, "hello\tworld"), "u2": (3, "x  y"), "u3": (4, "")}
    assert read_kaldi_text(path) == {k: v for k, (_, v) in table.items()}


@pytest.mark.parametrize(
    "data, message",
    [
        (b"a 1\nb \xe9\n", r"text:2: expected UTF-8 text, found byte 0xe9 at column 3"),
        (b"a 1\n\na 2\n", r"text:3: duplicate utterance id 'a' \(first seen on line 1\)"),
    ],
)
def test_scoring_and_data_refuse_a_file_alike(tmp_path, data, message):
    path = tmp_path / "text"
    path.write_bytes(data)
    assert TextFileError is DataError
    for read in (read_kaldi_text, read_kaldi_table):
        with pytest.raises(DataError, match=message):
            read(path)


def test_a_key_alone_is_an_error_where_a_value_is_needed(tmp_path):
    path = tmp_path / "wav.scp"
    path.write_text("a /x/a.wav\nb\n")
    with pytest.raises(DataError, match=r"wav.scp:2: one field 'b'; expected '<key> <value>'"):
        read_kaldi_table(path)
