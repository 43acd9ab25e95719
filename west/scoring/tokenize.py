"""Split a transcript into the units that are scored: words, characters, or both mixed.

* ``word``: whitespace-separated words (English WER).
* ``char``: every non-space character is a token (Chinese CER); spaces carry no information.
* ``mixed``: CJK characters one by one, runs of other letters/digits as words (an apostrophe
  between two letters stays inside the word: ``don't``); any other non-space character
  (punctuation left by ``--normalizer none``) is a token of its own.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MODES = ("word", "char", "mixed")

# Ideographs, kana, Hangul syllables and CJK compatibility ideographs: scored one character each.
_CJK = (
    "\u2e80-\u2fdf"  # CJK radicals, Kangxi radicals
    "\u3005\u3007\u3021-\u3029"  # iteration mark, ideographic zero, Hangzhou numerals
    "\u3040-\u30ff"  # hiragana, katakana
    "\u31f0-\u31ff"  # katakana phonetic extensions
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_LETTER = rf"(?:(?![{_CJK}])[^\W_])"
_MIXED_TOKEN = re.compile(rf"[{_CJK}]|{_LETTER}+(?:'{_LETTER}+)*|\S", re.UNICODE)


def word_tokens(text: str) -> list[str]:
    """Whitespace-separated words."""
    return text.split()


def char_tokens(text: str) -> list[str]:
    """Every non-whitespace character."""
    return [c for c in text if not c.isspace()]


def mixed_tokens(text: str) -> list[str]:
    """CJK characters one by one, Latin (and other alphabetic) runs and numbers as words."""
    return _MIXED_TOKEN.findall(text)


def get_tokenizer(mode: str) -> Callable[[str], list[str]]:
    """The tokenizer for ``mode`` (one of :data:`MODES`)."""
    tokenizers = {"word": word_tokens, "char": char_tokens, "mixed": mixed_tokens}
    if mode not in tokenizers:
        raise ValueError(f"unknown scoring mode '{mode}', expected one of {', '.join(MODES)}")
    return tokenizers[mode]
