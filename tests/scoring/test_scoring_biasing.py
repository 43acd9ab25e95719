"""B-WER and U-WER (west/scoring/biasing.py, west-score --biasing), counted by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from west.bin.score import main
from west.scoring.align import Counts
from west.scoring.biasing import (
    BiasingLists,
    biased_positions,
    read_biasing_file,
    score_biasing,
)
from west.scoring.normalize import DEFAULT_NORMALIZER, get_normalizer
from west.scoring.table import biasing_table, load_experiment
from west.scoring.textio import TextFileError
from west.scoring.tokenize import get_tokenizer
from west.scoring.wer import score_utterances


def split(ref: str, hyp: str, phrases: list[str], mode="word", normalizer=None):
    """(biased, unbiased) counts of one utterance."""
    tokenize = get_tokenizer(mode)
    normalize = get_normalizer(normalizer or DEFAULT_NORMALIZER[mode])
    scores = score_utterances({"u": ref}, {"u": hyp}, tokenize, normalize)
    b, u, unlisted = score_biasing(scores, BiasingLists("x", {"u": phrases}), tokenize, normalize)
    assert not unlisted
    # The two sides add up to the WER's counts.
    assert b + u == scores[0].counts
    return b, u


def C(cor=0, sub=0, ins=0, dele=0) -> Counts:
    return Counts(cor, sub, ins, dele)


@pytest.mark.parametrize(
    "hyp, biased, unbiased",
    [
        ("i met ann in paris", C(cor=1), C(cor=4)),
        ("i met ann in parish", C(sub=1), C(cor=4)),  # biased word substituted
        ("i met ann in", C(dele=1), C(cor=4)),  # biased word deleted
        ("i met an in paris", C(cor=1), C(cor=3, sub=1)),  # unbiased word substituted
        ("i met in paris", C(cor=1), C(cor=3, dele=1)),  # unbiased word deleted
        ("i met ann in paris rome", C(cor=1, ins=1), C(cor=4)),  # list word inserted
        ("i met ann in paris today", C(cor=1), C(cor=4, ins=1)),  # other word inserted
    ],
)
def test_errors_on_a_biased_and_an_unbiased_word(hyp, biased, unbiased):
    assert split("i met ann in paris", hyp, ["paris", "rome"]) == (biased, unbiased)


def test_a_phrase_biases_its_occurrences_only():
    # "new york" biases both of its words where they occur together; the lone "york" is not.
    b, u = split("i love new york and york", "i love new yolk and yolk", ["New York"])
    assert b == C(cor=1, sub=1) and u == C(cor=3, sub=1)
    # A word of a phrase, inserted, counts to B-WER.
    b, u = split("i love new york", "i love york new york", ["new york"])
    assert b == C(cor=2, ins=1) and u == C(cor=2)


def test_overlapping_entries_and_repeated_occurrences():
    b, u = split("a b c a b", "a x c a b", ["a b", "b c"])
    assert b == C(cor=4, sub=1) and u == C()
    assert biased_positions(["a", "b", "c", "a"], [("b", "c"), ("a",)]) == [True] * 4


def test_case_is_normalised_in_lists_and_texts():
    b, u = split("We flew to PARIS", "we flew to paris", ["Paris"])
    assert b == C(cor=1) and u == C(cor=3)


def test_apostrophes_and_digits_with_the_english_normaliser():
    # Whisper's normaliser writes O'Brien "0 brien", McDonald's "mcdonald is" and nineteen
    # ninety "1990", in the texts and in the list alike: the entries still match.
    ref = "we met O'Brien at McDonald's in nineteen ninety"
    hyp = "we met o brian at mcdonalds in 1990"
    b, u = split(ref, hyp, ["O'Brien", "McDonald's", "1990"])
    assert b == C(cor=2, sub=2, dele=1) and u == C(cor=4)


def test_apostrophes_and_digits_scored_as_written():
    b, u = split(
        "o'brien paid 1990 dollars",
        "obrien paid 1990 dollar",
        ["o'brien", "1990"],
        normalizer="none",
    )
    assert b == C(cor=1, sub=1) and u == C(cor=1, sub=1)


def test_chinese_characters_match_as_a_span():
    # 张大伟 is three biased characters; the nine before and 说 are not.
    b, u = split(
        "中原地产首席分析师张大伟说", "中原地产首席分析师张大为说", ["张大伟"], mode="char"
    )
    assert b == C(cor=2, sub=1) and u == C(cor=10)
    # The list's own segmentation and punctuation do not matter: it is normalised as text.
    b2, u2 = split(
        "中原地产首席分析师张大伟说", "中原地产首席分析师张大为说", ["张 大伟。"], mode="char"
    )
    assert (b2, u2) == (b, u)
    # An inserted character of an entry counts to B-CER.
    b, u = split("他说张大伟", "他说张大伟伟", ["张大伟"], mode="char")
    assert b == C(cor=3, ins=1) and u == C(cor=2)


def test_mixed_mode_latin_word_in_chinese():
    b, u = split("我们用WeNet训练", "我们用wenet训练", ["WeNet"], mode="mixed")
    assert b == C(cor=1) and u == C(cor=5)


# ---------------------------------------------------------------- west-score --biasing


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(tmp_path, ref, hyp, biasing, capsys, *options):
    args = [
        *options,
        "--biasing",
        write(tmp_path / "bias", biasing),
        write(tmp_path / "ref", ref),
        write(tmp_path / "hyp", hyp),
    ]
    rc = main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_cli_prints_b_wer_and_u_wer_after_kaldi_lines(tmp_path, capsys):
    ref = "u1 the quick fox\nu2 hello new york city\n"
    hyp = "u1 the quack fox jumps\nu2 hello york city\n"
    lists = (
        '{"key": "u1", "wav": "/a.wav", "txt": "x", "context": ["Quick", "zebra"]}\n'
        '{"key": "u2", "context": ["new york"]}\n'
    )
    rc, out, err = run(tmp_path, ref, hyp, lists, capsys)
    assert rc == 0 and err == ""
    assert out.splitlines() == [
        "%WER 42.86 [ 3 / 7, 1 ins, 1 del, 1 sub ]",
        "%SER 100.00 [ 2 / 2 ]",
        "Scored 2 sentences, 0 not present in hyp.",
        "%B-WER 66.67 [ 2 / 3, 0 ins, 1 del, 1 sub ]",
        "%U-WER 25.00 [ 1 / 4, 1 ins, 0 del, 0 sub ]",
    ]


def test_cli_plain_list_applies_to_every_utterance(tmp_path, capsys):
    lists = "# hotwords\nquick\n\n  new york  \n"
    ref = "u1 the quick fox\nu2 hello new york city\n"
    rc, out, _ = run(tmp_path, ref, "u1 the quack fox\nu2 hello new york city\n", lists, capsys)
    assert rc == 0
    assert out.splitlines()[-2:] == [
        "%B-WER 33.33 [ 1 / 3, 0 ins, 0 del, 1 sub ]",
        "%U-WER 0.00 [ 0 / 4, 0 ins, 0 del, 0 sub ]",
    ]


def test_cli_char_mode_missing_hypothesis_and_unlisted_utterance(tmp_path, capsys):
    ref = "a 张大伟说\nb 他来了\nc 不在列表\n"
    lists = (
        json.dumps({"key": "a", "context": ["张大伟"]}, ensure_ascii=False)
        + "\n"
        + json.dumps({"key": "b", "context": ["来"]}, ensure_ascii=False)
        + "\n"
    )
    rc, out, err = run(tmp_path, ref, "a 张大为说\nc 不在列表\n", lists, capsys, "--mode", "char")
    assert rc == 0
    # a: 1 of 3 biased substituted; b missing: 来 (biased) and 他, 了 deleted; c: no list.
    assert out.splitlines()[-2:] == [
        "%B-WER 50.00 [ 2 / 4, 0 ins, 1 del, 1 sub ] [PARTIAL]",
        "%U-WER 28.57 [ 2 / 7, 0 ins, 2 del, 0 sub ] [PARTIAL]",
    ]
    assert "1 reference utterance(s) have no biasing list" in err and ": c" in err


def test_cli_no_biased_words_is_undefined(tmp_path, capsys):
    rc, out, _ = run(tmp_path, "u1 a b\n", "u1 a b\n", "zebra\n", capsys)
    assert rc == 0
    assert out.splitlines()[-2] == "%B-WER undefined [ 0 / 0, 0 ins, 0 del, 0 sub ]"


@pytest.mark.parametrize(
    "content, line, expected",
    [
        ('{"key": "u1", "context": ["a"]}\n{"key": "u2", "context": ["a"]\n', 2, "not valid JSON"),
        ('{"key": "u1", "context": ["a"]}\n\n{"context": ["a"]}\n', 3, 'no "key" string'),
        ('{"key": "u1", "context": ["a"]}\n{"key": "u2", "context": "a b"}\n', 2, "not a list of strings"),
        ('{"key": "u1", "context": ["a", 1]}\n', 1, "not a list of strings"),
        ('{"key": "u1", "context": ["a"]}\n{"key": "u1", "context": []}\n', 2, "again (line 1)"),
        ("# list\nparis\nrome\n" + '{"key": "u1", "context": ["a"]}\n', 4, "a JSON line in a list of phrases"),
    ],
)  # fmt: skip
def test_bad_biasing_lines_name_file_and_line(tmp_path, capsys, content, line, expected):
    path = write(tmp_path / "lists", content)
    with pytest.raises(TextFileError) as e:
        read_biasing_file(path)
    assert f"{path}:{line}: " in str(e.value) and expected in str(e.value)
    # west-score reports it and fails.
    rc, out, err = run(tmp_path, "u1 a\n", "u1 a\n", content, capsys)
    assert rc == 1 and out == ""
    assert f"{tmp_path / 'bias'}:{line}: " in err and expected in err


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"key": "u1", "wav": "a.wav"}\n', 'no line has a "context" list'),
        ("# nothing but comments\n\n", "no phrase"),
    ],
)
def test_biasing_files_without_lists_are_errors(tmp_path, content, expected):
    path = write(tmp_path / "lists", content)
    with pytest.raises(TextFileError, match=expected):
        read_biasing_file(path)


def test_data_list_lines_without_context_have_empty_lists(tmp_path):
    lists = read_biasing_file(
        write(tmp_path / "l", '{"key": "u1", "wav": "a"}\n{"key": "u2", "context": []}\n')
    )
    assert lists.get("u2") == [] and lists.get("u1") is None and lists.get("u3") is None


def test_results_table_shows_wer_b_wer_u_wer(tmp_path):
    exp = tmp_path / "llama-whisper-tiny"
    wers = {
        "decode_test_bias100_beam1_final": "%WER 10.00 [ 1 / 10, 0 ins, 0 del, 1 sub ]\n"
        "%B-WER 50.00 [ 1 / 2, 0 ins, 0 del, 1 sub ]\n%U-WER 0.00 [ 0 / 8, 0 ins, 0 del, 0 sub ]\n",
        "decode_test_beam1_final": "%WER 20.00 [ 2 / 10, 0 ins, 0 del, 2 sub ]\n",
    }
    for name, text in wers.items():
        (exp / name).mkdir(parents=True)
        (exp / name / "wer").write_text(text)
    e = load_experiment(exp)
    table = biasing_table([e], beam=1, metric="CER").splitlines()
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in table]
    assert cells[0] == ["Exp", "Decoding", "Test set", "CER", "B-CER", "U-CER"]
    assert cells[2] == [
        "1", "final", "test_bias100", "10.00", "50.00", "0.00",
    ]  # fmt: skip
    assert len(table) == 3  # the set without B-WER has no row
    (exp / "decode_test_bias100_beam1_final" / "wer").write_text("%WER 1.00 [ 1 / 100 ]\n")
    assert biasing_table([load_experiment(exp)]) is None


def test_results_table_cli_adds_the_biasing_table(tmp_path):
    exp = tmp_path / "exp"
    d = exp / "decode_test_clean_bias100_beam1"
    d.mkdir(parents=True)
    (d / "wer").write_text(
        "%WER 10.00 [ 1 / 10, 0 ins, 0 del, 1 sub ]\n%WER(filtered) 5.00 [ 1 / 20, 0 ins, 0 "
        "del, 1 sub ]\n%WER raw/filtered 10.00/5.00 (1 hallucination filtered)\n"
        "%B-WER 50.00 [ 1 / 2, 0 ins, 0 del, 1 sub ]\n%U-WER 0.00 [ 0 / 8, 0 ins, 0 del, 0 sub ]\n"
    )
    script = Path(__file__).resolve().parents[2] / "tools" / "results_table.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(exp)], capture_output=True, text=True, check=True
    )
    tables = proc.stdout.split("\n\n")
    assert len(tables) == 3
    assert "10.00/5.00" in tables[0]  # the main table: raw/filtered
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in tables[2].splitlines()]
    assert rows[0] == ["Exp", "Test set", "WER", "B-WER", "U-WER"]
    assert rows[2] == ["1", "test_clean_bias100", "10.00", "50.00", "0.00"]

    (d / "wer").write_text("%WER 10.00 [ 1 / 10, 0 ins, 0 del, 1 sub ]\n%B-WER 5.00 [ 1 / 20 ]\n")
    proc = subprocess.run([sys.executable, str(script), str(exp)], capture_output=True, text=True)
    assert proc.returncode == 1 and f"{d / 'wer'}: a %B-WER line without %U-WER" in proc.stderr
