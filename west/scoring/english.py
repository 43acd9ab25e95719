"""openai-whisper's English normaliser, reached without importing torch, and made cheap.

Loading: ``import whisper.normalizers`` runs ``whisper/__init__.py`` first, which imports torch
and numba (3-4.5 s, and a ``ModuleNotFoundError`` where torch is absent). The three files of
``whisper/normalizers/`` (``basic.py``, ``english.py``, ``english.json``) import only the
standard library, ``regex`` and ``more_itertools``, so they are loaded here by path, as a
private package, without running ``whisper/__init__.py``.

Speed: Whisper's normaliser costs about 1 ms per 20-word line, most of it spent walking every
word through its number parser. :class:`FastEnglishNormalizer` gives the same words at a
fraction of that by splitting a line at *plain* words (ASCII letters only, and not a word any
of Whisper's rules looks at: number words, ``and``/``a``/``half``, contraction and title
words, fillers, ordinal suffixes). A plain word passes through Whisper's normaliser unchanged
but for the British-to-American spelling map, and resets its number parser, so the runs
between plain words are normalised on their own (cached per distinct run, with a plain word on
either side standing in for the neighbours). A line with brackets, parentheses or a word that
starts with an apostrophe (rules that join words) goes to Whisper's normaliser whole.
``tests/scoring/test_scoring_english.py`` checks that both give the same words on a large
varied text.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

_PACKAGE = "_west_whisper_normalizers"
# Stands in for a neighbouring plain word; checked to be plain when the normaliser is built.
_CONTEXT = "zq"
_PLAIN = re.compile(r"[a-z]+")
# Characters whose rules reach across words: brackets, parentheses, a leading apostrophe.
_BRACKETS = re.compile(r"[\[\]<>()]")
_LEADING_APOSTROPHE = re.compile(r"(?<!\S)'")
# Words that Whisper's rules name, beyond its number parser's vocabulary.
_RULE_WORDS = {"a", "half", "st", "nd", "rd", "th", "s"}


class EnglishNormalizerUnavailable(ImportError):
    """openai-whisper's normaliser files are not installed."""


def whisper_normalizers_dir() -> Path:
    """The ``whisper/normalizers`` folder of the installed openai-whisper, found without import."""
    spec = importlib.util.find_spec("whisper")
    if spec is None or not spec.submodule_search_locations:
        raise EnglishNormalizerUnavailable(
            "the english normaliser is openai-whisper's: expected the 'whisper' package "
            "(pip install openai-whisper), or score with --normalizer none or chinese"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "normalizers"
    if not (folder / "english.py").is_file():
        raise EnglishNormalizerUnavailable(
            f"{folder}/english.py: not found; expected openai-whisper"
        )
    return folder


@lru_cache(maxsize=1)
def load_whisper_normalizers() -> ModuleType:
    """``whisper.normalizers`` loaded by path under a private name (torch is never imported)."""
    folder = whisper_normalizers_dir()
    spec = importlib.util.spec_from_file_location(
        _PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[_PACKAGE] = module
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as e:
        del sys.modules[_PACKAGE]
        raise EnglishNormalizerUnavailable(
            f"{folder}: openai-whisper's normaliser needs the module '{e.name}', not installed"
        ) from e
    except BaseException:
        del sys.modules[_PACKAGE]
        raise
    return module


def _words_named_by(patterns: list[str]) -> set[str]:
    return {w for p in patterns for w in re.findall(r"[a-z]+", p.replace(r"\b", " "))}


class FastEnglishNormalizer:
    """Whisper's ``EnglishTextNormalizer``: the same words, at a fraction of the cost.

    Returns the normalised words joined by single spaces (Whisper's may keep a space at either
    end; scoring splits on whitespace, so that never matters).
    """

    def __init__(self, whisper_normalizer: Any = None) -> None:
        """``whisper_normalizer``: an ``EnglishTextNormalizer`` (default: the installed one)."""
        if whisper_normalizer is None:
            whisper_normalizer = load_whisper_normalizers().EnglishTextNormalizer()
        self.whisper = whisper_normalizer
        numbers = whisper_normalizer.standardize_numbers
        self.spelling: dict[str, str] = whisper_normalizer.standardize_spellings.mapping
        named = set(numbers.words) | _RULE_WORDS
        for suffix in numbers.suffixers.values():
            if isinstance(suffix, dict):  # "per" -> {"cent": "%"}
                named |= set(suffix)
        named |= _words_named_by(
            [*whisper_normalizer.replacers, whisper_normalizer.ignore_patterns]
        )
        self.rule_words = frozenset(named)
        if not self._plain(_CONTEXT) or self.whisper(f"{_CONTEXT} {_CONTEXT}").split() != [
            _CONTEXT,
            _CONTEXT,
        ]:
            raise RuntimeError(f"'{_CONTEXT}' is not a plain word for this Whisper normaliser")
        self._plain_words: dict[str, str | None] = {}  # word -> its spelling, None if not plain
        self._run = lru_cache(maxsize=1 << 16)(self._normalize_run)
        # A scored line is often met twice (a correct hypothesis repeats its reference).
        self._line = lru_cache(maxsize=1 << 17)(self._normalize)

    def __call__(self, text: str) -> str:
        return self._line(text)

    def _plain(self, word: str) -> bool:
        return _PLAIN.fullmatch(word) is not None and word not in self.rule_words

    def _plain_spelling(self, word: str) -> str | None:
        """The output of a plain word (its American spelling), None for any other word."""
        try:
            return self._plain_words[word]
        except KeyError:
            out = self.spelling.get(word, word) if self._plain(word) else None
            if len(self._plain_words) < 1 << 20:
                self._plain_words[word] = out
            return out

    def _normalize_run(self, run: str, before: bool, after: bool) -> str:
        # A context word stands for a plain neighbour (Whisper's rules on "%", "$" and
        # "and a half" look one character or word beyond the run); it comes back unchanged.
        text = f"{_CONTEXT} {run}" if before else run
        words = self.whisper(f"{text} {_CONTEXT}" if after else text).split()
        return " ".join(words[int(before) : len(words) - int(after)])

    def _normalize(self, text: str) -> str:
        text = text.lower()
        if _BRACKETS.search(text) or ("'" in text and _LEADING_APOSTROPHE.search(text)):
            return " ".join(self.whisper(text).split())
        out: list[str] = []
        run: list[str] = []
        for word in text.split():
            spelled = self._plain_spelling(word)
            if spelled is None:
                run.append(word)
            else:
                if run:
                    out.append(self._run(" ".join(run), bool(out), True))
                    run = []
                out.append(spelled)
        if run:
            out.append(self._run(" ".join(run), bool(out), False))
        return " ".join(w for w in out if w)
