"""tools/biasing_lists.py and west.data.rare_words: rare words, distractors, determinism,
formats; its lists scored."""

from __future__ import annotations

import importlib.util
import json
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from west.bin.score import main as west_score
from west.data import rare_words as rw

TOOL = Path(__file__).resolve().parents[2] / "tools" / "biasing_lists.py"
_spec = importlib.util.spec_from_file_location("biasing_lists", TOOL)
bl = importlib.util.module_from_spec(_spec)
sys.modules["biasing_lists"] = bl  # (dataclasses look their module up there)
_spec.loader.exec_module(bl)

TRAIN = {
    "tr1": "the cat sat on the mat",
    "tr2": "the dog ate the cat food",
    "tr3": "o'brien paid 1990 dollars for the dog",
    "tr4": "a cat and a dog",
}


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def kaldi(path: Path, table: dict[str, str]) -> str:
    return write(path, "".join(f"{k} {v}\n" for k, v in table.items()))


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_common_and_rare_words():
    # the: 5, cat, dog: 3, a: 2; ties broken by code point.
    vocab = rw.build_vocabulary(TRAIN.values(), ["zebra and THE", "quokka"], num_common=3)
    assert vocab.common == {"the", "cat", "dog"}
    counts = Counter(w for t in TRAIN.values() for w in t.split())
    expected = {w for w in counts if w not in vocab.common} | {"zebra", "THE", "quokka"}
    assert vocab.rare == sorted(expected)
    assert "a" in vocab.rare and "and" in vocab.rare  # a rare word is every non-common one
    assert rw.build_vocabulary(TRAIN.values(), num_common=4).common == {"the", "cat", "dog", "a"}
    # An utterance's rare words: those not common, in vocabulary or not, each once.
    assert rw.own_rare_words("the zebra and the cat and quux".split(), vocab.common) == [
        "zebra", "and", "quux",
    ]  # fmt: skip


def test_lists_hold_own_rare_words_and_distractors_never_the_utterances_words():
    rng = random.Random(1)
    vocab = rw.Vocabulary(common={"the", "a"}, rare=[f"w{i}" for i in range(300)])
    for i in range(200):
        words = ["the", *rng.sample(vocab.rare, 5), "unseen", "a"]
        entries = rw.biasing_list(f"utt{i}", words, vocab, distractors=20, seed=3)
        own = [w for w in words if w not in vocab.common]
        assert sorted(entries) == sorted(set(entries))  # no entry twice
        assert set(own) <= set(entries) and "the" not in entries
        distractors = set(entries) - set(own)
        assert len(distractors) == 20 and distractors <= set(vocab.rare)
        assert not distractors & set(words)


def test_lists_are_seeded_per_utterance():
    vocab = rw.Vocabulary(common=set(), rare=[f"w{i}" for i in range(1000)])
    one = rw.biasing_list("u1", ["x"], vocab, 50, seed=0)
    assert one == rw.biasing_list("u1", ["x"], vocab, 50, seed=0)
    assert one != rw.biasing_list("u1", ["x"], vocab, 50, seed=1)
    assert one != rw.biasing_list("u2", ["x"], vocab, 50, seed=0)
    # Shuffled: the utterance's own word is not always first.
    firsts = {rw.biasing_list(f"u{i}", ["x"], vocab, 5)[0] for i in range(20)}
    assert firsts != {"x"}


def test_char_unit_keeps_distractors_out_of_the_utterances_characters():
    vocab = rw.Vocabulary(common=set(), rare=["市场", "场", "风险", "张大伟", "楼市", "土地"])
    words = "市场 风险".split()
    assert sorted(rw.biasing_list("u", words, vocab, 10, unit="word")) == sorted(
        ["市场", "风险", "场", "张大伟", "楼市", "土地"]
    )
    # 场 is inside 市场: in char mode it would mark the reference's 场 as biased.
    assert sorted(rw.biasing_list("u", words, vocab, 10, unit="char")) == sorted(
        ["市场", "风险", "张大伟", "楼市", "土地"]
    )


def test_cli_data_list_in_data_list_out(tmp_path):
    train = kaldi(tmp_path / "train", TRAIN)
    data = write(
        tmp_path / "data.jsonl",
        '{"key": "t1", "wav": "/a.wav", "txt": "The zebra met O\'Brien in 1990"}\n'
        '{"key": "t2", "wav": "/b.wav", "txt": "the cat", "context": ["old"]}\n',
    )
    out = tmp_path / "sub" / "out.jsonl"
    options = ["--train_text", train, "--num_common", "3", "--distractors", "4", "--lower"]
    proc = run(*options, data, str(out))
    assert proc.returncode == 0, proc.stderr
    assert "2 lists" in proc.stderr
    lines = read_jsonl(out)
    assert [{k: v for k, v in u.items() if k != "context"} for u in lines] == [
        {"key": "t1", "wav": "/a.wav", "txt": "The zebra met O'Brien in 1990"},
        {"key": "t2", "wav": "/b.wav", "txt": "the cat"},
    ]
    own = ["zebra", "met", "o'brien", "in", "1990"]
    assert set(own) <= set(lines[0]["context"]) and len(lines[0]["context"]) == 9
    assert "the" not in lines[0]["context"]
    assert len(lines[1]["context"]) == 4 and "old" not in lines[1]["context"]  # replaced
    # The same command gives the same lists.
    again = tmp_path / "again.jsonl"
    run(*options, data, str(again))
    assert again.read_text() == out.read_text()


def test_cli_chinese_from_a_segmented_text_round_trips_into_scoring(tmp_path, capsys):
    """AISHELL: the words come from the segmented text.orig, the data list is unsegmented."""
    train = kaldi(tmp_path / "train", {"a": "市场 的 调整", "b": "他 说 市场 的 选择"})
    segmented = {"t1": "中原 地产 首席 分析师 张大伟 说", "t2": "市场 的 风险"}
    words = kaldi(tmp_path / "text.orig", segmented)
    data = write(
        tmp_path / "data.jsonl",
        "".join(
            json.dumps(
                {"key": k, "wav": f"/{k}.wav", "txt": t.replace(" ", "")}, ensure_ascii=False
            )
            + "\n"
            for k, t in segmented.items()
        ),
    )
    out = tmp_path / "out.jsonl"
    proc = run("--train_text", train, "--num_common", "3", "--distractors", "3", "--unit", "char",
               "--words_text", words, data, str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text(encoding="utf-8")
    assert "张大伟" in text  # written as itself, not as \\u escapes
    lists = {u["key"]: u["context"] for u in read_jsonl(out)}
    # Common: 市场 and 的 (2 each), then 他 (first by code point); rare: 说 调整 选择.
    # t1's words are all rare (说 too), so its distractors can only be 调整 and 选择.
    assert sorted(lists["t1"]) == sorted(
        ["中原", "地产", "首席", "分析师", "张大伟", "说", "调整", "选择"]
    )
    assert sorted(lists["t2"]) == sorted(["风险", "说", "调整", "选择"])
    assert "1 list(s) got fewer than 3 distractors" in proc.stderr
    # Scored against these lists: t1's 13 characters are all biased, t2's 风险; 伟 -> 为 is
    # the one biased error.
    ref = kaldi(tmp_path / "ref", {k: t.replace(" ", "") for k, t in segmented.items()})
    hyp = kaldi(tmp_path / "hyp", {"t1": "中原地产首席分析师张大为说", "t2": "市场的风险"})
    assert west_score(["--mode", "char", "--biasing", str(out), ref, hyp]) == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "%B-WER 6.67 [ 1 / 15, 0 ins, 0 del, 1 sub ]",
        "%U-WER 0.00 [ 0 / 3, 0 ins, 0 del, 0 sub ]",
    ]


def test_cli_kaldi_text_in_key_and_context_out_with_extra_text(tmp_path):
    train = kaldi(tmp_path / "train", TRAIN)
    extra = write(tmp_path / "lm.txt", "AN OKAPI AND A QUOKKA\n\nTHE NUMBAT\n")
    text = kaldi(tmp_path / "text", {"t1": "the okapi", "t2": "a dog"})
    out = tmp_path / "out.jsonl"
    proc = run("--train_text", train, "--extra_text", extra, "--num_common", "20",
               "--distractors", "5", "--lower", text, str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lists = read_jsonl(out)
    assert [sorted(u) for u in lists] == [["context", "key"]] * 2
    # Every training word is common: the distractors come from the extra text only.
    assert sorted(lists[0]["context"]) == ["an", "numbat", "okapi", "quokka"]
    assert sorted(lists[1]["context"]) == ["an", "numbat", "okapi", "quokka"]
    assert "2 list(s) got fewer than 5 distractors" in proc.stderr


@pytest.mark.parametrize(
    "data, words, expected",
    [
        ('{"key": "t1", "txt": "a"}\n{"key": "t2", "txt": "b"\n', None, "data.jsonl:2: not valid JSON"),
        ('{"key": "t1", "txt": "a"}\n{"txt": "b"}\n', None, 'data.jsonl:2: no "key" string'),
        ('{"key": "t1", "txt": "a"}\n{"key": "t1", "txt": "b"}\n', None, "data.jsonl:2: key 't1' again"),
        ('{"key": "t1", "wav": "/a.wav"}\n', None, 'data.jsonl:1: no "txt"'),
        ('{"key": "t1", "txt": "a"}\n{"key": "t2", "txt": "b"}\n', "t1 a\n", "words: no line for 't2' (")
    ],
)  # fmt: skip
def test_cli_errors_name_file_and_line(tmp_path, data, words, expected):
    train = kaldi(tmp_path / "train", TRAIN)
    args = ["--train_text", train, "--distractors", "1"]
    if words is not None:
        args += ["--words_text", write(tmp_path / "words", words)]
    proc = run(*args, write(tmp_path / "data.jsonl", data), str(tmp_path / "out.jsonl"))
    assert proc.returncode == 1
    assert "biasing_lists.py: error:" in proc.stderr and expected in proc.stderr
    assert str(tmp_path) in proc.stderr
