"""Text normalisers applied identically to reference and hypothesis before scoring.

* ``english`` (default for ``--mode word``): openai-whisper's ``EnglishTextNormalizer``:
  lower case, punctuation and bracketed/filler words (``[noise]``, ``um``) removed, numbers
  written as digits (``twenty five`` -> ``25``), British spellings and contractions
  standardised (``colour`` -> ``color``, ``can't`` -> ``can not``).
* ``chinese`` (default for ``--mode char`` and ``--mode mixed``): Unicode NFKC (full-width
  letters, digits and spaces become half-width), lower case, every punctuation or symbol
  character (CJK and ASCII) replaced by a space, except an apostrophe between two letters
  (``don't``); spaces collapsed. In ``char`` mode the remaining spaces are then ignored.
* ``none``: the text is scored as written (only whitespace is collapsed by tokenisation).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from functools import lru_cache

NORMALIZERS = ("english", "chinese", "none")
DEFAULT_NORMALIZER = {"word": "english", "char": "chinese", "mixed": "chinese"}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})


def normalize_chinese(text: str) -> str:
    """NFKC, lower case, punctuation/symbols -> space (word-internal apostrophes kept)."""
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    out: list[str] = []
    for i, c in enumerate(text):
        if c == "'" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
            out.append(c)
        elif unicodedata.category(c)[0] in "PS":
            out.append(" ")
        else:
            out.append(c)
    return " ".join("".join(out).split())


def normalize_none(text: str) -> str:
    """Identity (whitespace is handled by the tokenizer)."""
    return text


@lru_cache(maxsize=1)
def _english() -> Callable[[str], str]:
    # Imported lazily: importing whisper pulls in torch, which takes a second or two.
    from whisper.normalizers import EnglishTextNormalizer

    return EnglishTextNormalizer()


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
