"""Text normalisers applied identically to reference and hypothesis before scoring.

* ``english`` (default for ``--mode word``): openai-whisper's ``EnglishTextNormalizer``:
  lower case, punctuation and bracketed/filler words (``[noise]``, ``um``) removed, numbers
  written as digits (``twenty five`` -> ``25``; runs of number words merge, ``one two three``
  -> ``123``), British spellings and contractions standardised (``colour`` -> ``color``,
  ``can't`` -> ``can not``). Loaded without torch and sped up in :mod:`west.scoring.english`.
* ``chinese`` (default for ``--mode char`` and ``--mode mixed``): Unicode NFKC (full-width
  letters, digits and spaces become half-width), lower case, tags removed (``<unk>``,
  ``<noise>``, ``[laughter]``, ``<|im_end|>``: angle or square brackets around text without
  spaces), invisible format characters removed (zero-width space and joiners, byte-order
  mark, soft hyphen), every punctuation or symbol character (CJK and ASCII) replaced by a
  space, except an apostrophe between two letters (``don't``); spaces collapsed. In ``char`` mode the remaining spaces are then ignored.
* ``none``: the text is scored as written (only whitespace is collapsed by tokenisation).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import lru_cache

from west.scoring.english import FastEnglishNormalizer

NORMALIZERS = ("english", "chinese", "none")
DEFAULT_NORMALIZER = {"word": "english", "char": "chinese", "mixed": "chinese"}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})


_TAG = re.compile(r"<\|?[^\s<>|]*\|?>|\[[^\s\[\]]*\]")
# An apostrophe stays only between two letters or digits (``[^\W_]`` is str.isalnum).
_LONE_APOSTROPHE = re.compile(r"(?<![^\W_])'|'(?![^\W_])")


class _CharTable(dict):
    """A ``str.translate`` table filled on first sight of each character (a text uses few)."""

    def __init__(self, rule: Callable[[str], str | None]) -> None:
        super().__init__()
        self.rule = rule

    def __missing__(self, code: int) -> str | None:
        out = self[code] = self.rule(chr(code))
        return out


# Format characters (zero-width space and joiners, byte-order mark, soft hyphen) are dropped.
_DROP_FORMAT = _CharTable(lambda c: "" if unicodedata.category(c) == "Cf" else c)
# Punctuation and symbols become spaces; apostrophes are dealt with by _LONE_APOSTROPHE.
_PUNCTUATION_TO_SPACE = _CharTable(
    lambda c: " " if c != "'" and unicodedata.category(c)[0] in "PS" else c
)


def normalize_chinese(text: str) -> str:
    """NFKC, lower case, tags and format characters dropped, punctuation/symbols -> space."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    text = _TAG.sub(" ", text.translate(_DROP_FORMAT))
    text = _LONE_APOSTROPHE.sub(" ", text).translate(_PUNCTUATION_TO_SPACE)
    return " ".join(text.split())


def normalize_none(text: str) -> str:
    """Identity (whitespace is handled by the tokenizer)."""
    return text


@lru_cache(maxsize=1)
def _english() -> Callable[[str], str]:
    # Built on first use: reading Whisper's spelling table takes a few tens of milliseconds.
    return FastEnglishNormalizer()


def normalize_english(text: str) -> str:
    """openai-whisper's English normaliser (the one its papers' WERs are computed with)."""
    return _english()(text)


def get_normalizer(name: str) -> Callable[[str], str]:
    """The normaliser called ``name`` (one of :data:`NORMALIZERS`)."""
    normalizers = {
        "english": normalize_english,
        "chinese": normalize_chinese,
        "none": normalize_none,
    }
    if name not in normalizers:
        raise ValueError(f"unknown normalizer '{name}', expected one of {', '.join(NORMALIZERS)}")
    return normalizers[name]
