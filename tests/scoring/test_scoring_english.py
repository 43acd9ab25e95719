"""The English normaliser: Whisper's words without torch, at a fraction of Whisper's cost."""

import importlib.util
import random
import subprocess
import sys
from pathlib import Path

import pytest

from west.scoring.english import FastEnglishNormalizer, load_whisper_normalizers

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def whisper():
    """Whisper's own ``EnglishTextNormalizer`` (its code, loaded from its files by path)."""
    return load_whisper_normalizers().EnglishTextNormalizer()


@pytest.fixture(scope="module")
def fast(whisper):
    return FastEnglishNormalizer(whisper)


def varied_lines(n: int, rng: random.Random, spellings: list[str]) -> list[str]:
    """Lines mixing every word Whisper's rules look at with plain words, symbols and case."""
    numbers = FastEnglishNormalizer(load_whisper_normalizers().EnglishTextNormalizer())
    rule_words = sorted(numbers.rule_words)
    plain = "the cake is of i it was hello world u k x and the a to".split()
    symbols = (
        "$5 5% £3 1,000 3.5 5th 2nd 1s 10. € $ % ¢ 5 0.5 $0.07 a.m. e.g. it's don't won't 's - "
        "-- — café naïve 5k 2x v2 & 1/2 3:30 #1 ok? hmm, Mr. dr st. 1st. 100,000.00 Twenty FIVE "
        "Hundred [noise] (laughs) <unk> 'tis rock 'n' roll I'm we've they'd"
    ).split()
    pool = rule_words + plain * 4 + symbols + spellings
    return [" ".join(rng.choice(pool) for _ in range(rng.randint(0, 14))) for _ in range(n)]


def test_same_words_as_whisper_on_a_large_varied_text(whisper, fast):
    rng = random.Random(16)
    spellings = rng.sample(sorted(fast.spelling), 300)  # British spellings it rewrites
    lines = varied_lines(6000, rng, spellings)
    lines += ["", "   ", "and a half", "cake and a half", "twenty per cent", "% $", "it's been"]
    differ = [(s, fast(s), whisper(s)) for s in lines if fast(s).split() != whisper(s).split()]
    assert differ == []


def test_number_word_runs_merge_as_in_whisper(fast):
    # Documented in the README: runs of number words become one number.
    assert fast("one two three") == "123"
    assert fast("twenty five dollars") == "$25"
    assert fast("The colour of Mr. Smith's car") == "the color of mister smith is car"


def test_loaded_from_the_installed_whisper_files():
    module = load_whisper_normalizers()
    whisper_dir = Path(next(iter(importlib.util.find_spec("whisper").submodule_search_locations)))
    assert Path(module.english.__file__) == whisper_dir / "normalizers" / "english.py"


class CountingWhisper:
    """Whisper's normaliser, counting the calls that reach it."""

    def __init__(self, whisper):
        self.whisper, self.calls = whisper, 0
        self.standardize_numbers = whisper.standardize_numbers
        self.standardize_spellings = whisper.standardize_spellings
        self.replacers, self.ignore_patterns = whisper.replacers, whisper.ignore_patterns

    def __call__(self, text):
        self.calls += 1
        return self.whisper(text)


def test_plain_words_never_reach_whisper_and_runs_are_cached(whisper):
    counting = CountingWhisper(whisper)
    fast = FastEnglishNormalizer(counting)
    rng = random.Random(0)
    words = "the cat sat on mat colour hello world speech model".split()
    lines = [
        " ".join(rng.choices(words, k=10)) + f" paid twenty five dollars {i}" for i in range(500)
    ]
    start = counting.calls
    got = [fast(line) for line in lines]
    # One call per distinct run: "twenty five dollars 0" ... "... 499" (the last word varies).
    assert counting.calls - start == 500
    assert got[7].endswith("paid $25 7") and "color" in " ".join(got)
    start = counting.calls
    assert [fast(line) for line in lines] == got  # a line met again is not normalised again
    assert counting.calls == start


def score_in_subprocess(tmp_path, prelude: str, *python_flags: str) -> subprocess.CompletedProcess:
    (tmp_path / "ref").write_text("u1 Mr. Smith paid twenty five dollars.\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("u1 mister smith paid $25 today\n", encoding="utf-8")
    code = (
        f"{prelude}\n"
        "import sys\n"
        "from west.bin.score import main\n"
        f"rc = main([{str(tmp_path / 'ref')!r}, {str(tmp_path / 'hyp')!r}])\n"
        "print('imported:', sorted(m for m in ('torch', 'numba', 'whisper') if m in sys.modules))\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run(
        [sys.executable, *python_flags, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_word_scoring_never_imports_torch_numba_or_whisper_init(tmp_path):
    proc = score_in_subprocess(tmp_path, "")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "%WER 25.00 [ 1 / 4, 1 ins, 0 del, 0 sub ]",
        "%SER 100.00 [ 1 / 1 ]",
        "Scored 1 sentences, 0 not present in hyp.",
        "imported: []",
    ]


def test_word_scoring_runs_where_torch_and_numba_are_absent(tmp_path):
    # A None entry in sys.modules makes `import torch` raise ImportError, as if not installed.
    proc = score_in_subprocess(
        tmp_path, "import sys; sys.modules['torch'] = sys.modules['numba'] = None"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("%WER 25.00 [ 1 / 4, 1 ins, 0 del, 0 sub ]")


def test_without_whisper_the_english_normaliser_is_a_clear_error(tmp_path):
    # python -S: no site-packages, so neither openai-whisper nor rapidfuzz (the textbook
    # alignment takes over); scoring without the English normaliser still works.
    prelude = f"import sys; sys.path.insert(0, {str(REPO)!r})"
    proc = score_in_subprocess(tmp_path, prelude, "-S")
    assert proc.returncode == 1
    assert "west-score: error: the english normaliser is openai-whisper's" in proc.stderr
    assert "Traceback" not in proc.stderr
