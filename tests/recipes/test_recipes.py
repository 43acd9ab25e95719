"""The recipes end to end (stages 0-5) on miniature corpora laid out exactly as distributed.

LibriSpeech: `LibriSpeech/<subset>/<speaker>/<chapter>/*.flac` + upper-case `.trans.txt`;
AISHELL-1: `data_aishell/wav/<speaker>.tar.gz` + one word-segmented transcript. Speech is
espeak-ng's (Mandarin voice for AISHELL) at 16 kHz; the models are the tiny random
fixtures, trained for 2 steps on CPU without DeepSpeed. Each corpus has an audio file with
no transcript and a transcript with no audio, which must be reported with their counts.
Stage 5 builds biasing lists from the training text (5 common words, so that the tiny
corpora have rare ones), decodes them and scores WER, B-WER and U-WER.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
import soxr
from conftest import SENTENCES, synthesize

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TRAIN_EXTRA = (
    "--max_steps 2 --save_steps 2 --per_device_train_batch_size 2 --projector_hidden_size 32 "
    "--bf16 False --gradient_checkpointing False --dataloader_num_workers 0"
)

# A random LLM talks until max_new_tokens: keep that short.
DECODE_EXTRA = "--max_new_tokens 4"

AISHELL_SENTENCES = [
    "甚至 出现 交易 几乎 停滞 的 情况",
    "一二 线 城市 虽然 也 处于 调整 中",
    "而 对 楼市 成交 抑制 作用 最 大 的 限 购",
    "但 因为 聚集 了 过多 公共 资源",
    "标杆 房企 必然 调整 市场 战略",
    "因此 土地 储备 至关重要",
    "中原 地产 首席 分析师 张大伟 说",
    "一 线 城市 土地 供应 量 减少",
    "为了 规避 三 四 线 城市 明显 过剩 的 市场 风险",
    "他 说 这 是 市场 的 选择",
]


def speech_16k(text: str, path: Path, voice: str, fmt: str) -> Path:
    """espeak-ng speech resampled to 16 kHz and written as `fmt` (FLAC or WAV), as shipped."""
    tmp = synthesize(text, path.with_suffix(".espeak.wav"), voice=voice)
    audio, sr = sf.read(tmp, dtype="float32")
    tmp.unlink()
    sf.write(path, soxr.resample(audio, sr, 16000), 16000, format=fmt, subtype="PCM_16")
    return path


def run_recipe(recipe: str, *args: str) -> str:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    proc = subprocess.run(
        ["bash", "run.sh", *args],
        cwd=EXAMPLES / recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"run.sh {' '.join(args)} failed:\n{out[-6000:]}"
    return out


def read_table(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == sorted(lines), f"{path} is not sorted"
    return dict(line.split(" ", 1) for line in lines)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_data_dir(d: Path, texts: dict[str, str], speakers: dict[str, str]) -> None:
    """Kaldi files and data.jsonl hold exactly `texts` (normalised) and `speakers`."""
    wavs = read_table(d / "wav.scp")
    assert set(wavs) == set(texts)
    assert all(Path(w).is_absolute() and Path(w).is_file() for w in wavs.values())
    assert read_table(d / "text") == texts
    assert read_table(d / "utt2spk") == speakers
    jsonl = read_jsonl(d / "data.jsonl")
    assert [u["key"] for u in jsonl] == sorted(texts)
    assert {u["key"]: (u["wav"], u["txt"]) for u in jsonl} == {
        k: (wavs[k], texts[k]) for k in texts
    }


def check_experiment(
    exp: Path, test_sets: dict[str, dict[str, str]], beams: list[int], decode_tag: str
) -> str:
    """A checkpoint, the final model, keyed decodes and scores for every beam, RESULTS.md."""
    assert (exp / "checkpoint-2" / "west_complete").is_file()
    assert (exp / "checkpoint-2" / "model.safetensors").is_file()
    assert (exp / "model.safetensors").is_file() and (exp / "west_config.json").is_file()
    assert "loss" in (exp / "train.log").read_text()
    for name, texts in test_sets.items():
        for beam in beams:
            # Named by every setting: the final model, engine, CTC weight, dtype, token limit.
            d = exp / f"decode_{name}_beam{beam}_{decode_tag}"
            hyp = (d / "text").read_text(encoding="utf-8").splitlines()
            assert sorted(line.split(" ", 1)[0] for line in hyp) == sorted(texts), d
            assert (d / "decode.log").is_file() and (d / ".done").is_file()
            assert "%WER" in (d / "wer").read_text()
    results = (exp / "RESULTS.md").read_text(encoding="utf-8")
    for name in test_sets:
        assert name in results
    assert "|" in results
    return results


BIASING = ["--biasing_distractors", "3", "--biasing_num_common", "5", "--biasing_beams", "1"]


def check_biasing(
    data: Path,
    exp: Path,
    train_words: list[list[str]],
    test_words: dict[str, dict[str, list[str]]],
    decode_tag: str,
    beams: list[int],
    char: bool = False,
) -> None:
    """Stage 5: lists of own rare words + 3 distractors, decoded and scored with B/U rates.

    `train_words` / `test_words` are the (segmented) transcripts' words; the 5 most frequent
    training words are the common ones.
    """
    counts = Counter(w for words in train_words for w in words)
    common = set(sorted(counts, key=lambda w: (-counts[w], w))[:5])
    rare = set(counts) - common
    for name, utts in test_words.items():
        bias = data / f"{name}_bias3"
        assert (bias / "text").read_text() == (data / name / "text").read_text()
        plain = {u["key"]: u for u in read_jsonl(data / name / "data.jsonl")}
        lists = read_jsonl(bias / "data.jsonl")
        assert [u["key"] for u in lists] == list(plain)
        own_lists = {u["key"]: u["context"] for u in read_jsonl(data / name / "rare_words.jsonl")}
        for u in lists:
            words = utts[u["key"]]
            context = u.pop("context")
            assert u == plain[u["key"]]  # the data list's line, with its list added
            own = {w for w in words if w not in common}
            assert set(own_lists[u["key"]]) == own
            distractors = set(context) - own
            assert own <= set(context) and distractors <= rare
            allowed = {w for w in rare if w not in words and not (char and w in "".join(words))}
            assert len(distractors) == min(3, len(allowed)) and distractors <= allowed
        for beam in beams:
            # the stage-3 decode, scored against the lists without distractors
            wer = (exp / f"decode_{name}_beam{beam}_{decode_tag}" / "wer").read_text()
            assert "%B-WER" in wer and "%U-WER" in wer
        wer = (exp / f"decode_{name}_bias3_beam1_{decode_tag}" / "wer").read_text()
        rates = dict(re.findall(r"^%([BU]-)?WER \S+ \[ (\d+ / \d+)", wer, re.MULTILINE))
        (e, n), (be, bn), (ue, un) = (map(int, rates[k].split(" / ")) for k in ("", "B-", "U-"))
        assert be + ue == e and bn + un == n > 0, wer
    results = (exp / "RESULTS.md").read_text(encoding="utf-8")
    assert "B-" in results and f"{next(iter(test_words))}_bias3" in results


# ---------------------------------------------------------------- LibriSpeech

# subset -> [(speaker, chapter, [sentences])]
LIBRISPEECH = {
    "train-clean-100": [("19", "198", SENTENCES[0:2]), ("26", "495", SENTENCES[2:4])],
    "test-clean": [("1089", "134686", SENTENCES[4:6]), ("121", "121726", SENTENCES[0:1])],
    "test-other": [("1688", "142285", SENTENCES[1:4])],
}


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    """LibriSpeech/<subset>/<spk>/<chapter>/ with flac + trans.txt; returns (root, texts)."""
    root = tmp_path_factory.mktemp("corpus")
    texts: dict[str, dict[str, str]] = {}
    for subset, chapters in LIBRISPEECH.items():
        texts[subset] = {}
        for spk, chapter, sentences in chapters:
            d = root / "LibriSpeech" / subset / spk / chapter
            d.mkdir(parents=True)
            lines = []
            for i, sentence in enumerate(sentences):
                key = f"{spk}-{chapter}-{i:04d}"
                speech_16k(sentence, d / f"{key}.flac", "en-us", "FLAC")
                lines.append(f"{key} {sentence.upper()}")
                texts[subset][key] = sentence
            # (the first chapter's file without a final newline, as hand-edited files are)
            end = "" if (spk, subset) == ("19", "train-clean-100") else "\n"
            (d / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + end)
    chapter = root / "LibriSpeech/train-clean-100/26/495"
    speech_16k("no transcript for this one", chapter / "26-495-0007.flac", "en-us", "FLAC")
    with open(chapter / "26-495.trans.txt", "a") as f:
        f.write("26-495-0009 A TRANSCRIPT WHOSE AUDIO IS LOST\n")
    return root, texts


def test_librispeech_stages_0_to_5(librispeech, tiny_llm, tiny_whisper, tmp_path):
    corpus, texts = librispeech
    data, exp = tmp_path / "data", tmp_path / "exp"
    args = [
        "--corpus_dir", str(corpus), "--data_dir", str(data), "--exp_dir", str(exp),
        "--llm", str(tiny_llm), "--encoder", str(tiny_whisper),
        "--deepspeed", "", "--nproc-per-node", "1", "--train_set", "train_clean_100",
        "--train_extra", TRAIN_EXTRA, "--beams", "1 2", "--decode_dtype", "float32",
        "--decode_extra", DECODE_EXTRA,
    ]  # fmt: skip
    out = run_recipe("librispeech", "--stage", "0", "--stop_stage", "4", *args)

    assert (
        f"{data}/train_clean_100: 4 utterances; 1 audio file(s) without transcript, "
        "left out (e.g. 26-495-0007)" in out
    ), out
    assert "1 transcript(s) without audio" in out and "26-495-0009" in out
    assert f"{data}/test_clean: 3 utterances\n" in out
    for subset in LIBRISPEECH:
        d = data / subset.replace("-", "_")
        check_data_dir(d, texts[subset], {k: k.split("-")[0] for k in texts[subset]})
        # stage 1 lower-cased the targets; the corpus's upper-case text is kept
        assert read_table(d / "text.orig") == {k: t.upper() for k, t in texts[subset].items()}
    tag = "final_west_ctc0_float32_tok4"
    test_sets = {"test_clean": texts["test-clean"], "test_other": texts["test-other"]}
    results = check_experiment(exp, test_sets, [1, 2], tag)
    assert "raw/filtered" in (exp / f"decode_test_clean_beam1_{tag}" / "wer").read_text()
    assert results in out  # the table is printed too
    assert tag in results

    # Done stages are not redone (stage 1's model check always runs: skipped here).
    out = run_recipe("librispeech", "--stage", "0", "--stop_stage", "0", *args)
    assert out.count("prepared already") == 3
    out = run_recipe("librispeech", "--stage", "2", "--stop_stage", "3", *args)
    assert "trained already" in out and out.count("decoded already") == 4
    # Another setting is another folder, never a finished one of other settings.
    other = [*args[:-1], DECODE_EXTRA + " --max_new_tokens 3"]
    out = run_recipe("librispeech", "--stage", "3", "--stop_stage", "4", *other)
    assert "decoded already" not in out
    check_experiment(exp, test_sets, [1, 2], "final_west_ctc0_float32_tok3")
    results = (exp / "RESULTS.md").read_text(encoding="utf-8")
    assert tag in results and "final_west_ctc0_float32_tok3" in results

    # Stage 5: biasing lists from the training text, decoded and scored.
    out = run_recipe("librispeech", "--stage", "5", "--stop_stage", "5", *args, *BIASING)
    train_words = [t.split() for t in texts["train-clean-100"].values()]
    test_words = {name: {k: t.split() for k, t in utts.items()} for name, utts in test_sets.items()}
    check_biasing(data, exp, train_words, test_words, tag, [1, 2])
    assert "| B-WER" in out  # the table is printed
    out = run_recipe("librispeech", "--stage", "5", "--stop_stage", "5", *args, *BIASING)
    assert out.count("built already") == 4 and out.count("decoded already") == 2


# ---------------------------------------------------------------- AISHELL-1

# set -> {speaker: number of utterances}
AISHELL = {"train": {"S0002": 2, "S0003": 2}, "dev": {"S0724": 2}, "test": {"S0764": 3}}


@pytest.fixture(scope="module")
def aishell(tmp_path_factory) -> tuple[Path, dict[str, dict[str, str]]]:
    """data_aishell/wav/<speaker>.tar.gz + transcript; returns (root, {set: {key: text}})."""
    root = tmp_path_factory.mktemp("corpus")
    staging = tmp_path_factory.mktemp("staging")
    wav = root / "data_aishell" / "wav"
    wav.mkdir(parents=True)
    sentences = iter(AISHELL_SENTENCES)
    texts: dict[str, dict[str, str]] = {}
    for name, speakers in AISHELL.items():
        texts[name] = {}
        for spk, n in speakers.items():
            d = staging / name / spk
            d.mkdir(parents=True)
            for i in range(n):
                key = f"BAC009{spk}W{121 + i:04d}"
                sentence = next(sentences)
                speech_16k(sentence, d / f"{key}.wav", "cmn", "WAV")
                texts[name][key] = sentence
            if spk == "S0003":  # recorded, never transcribed
                speech_16k("没有 文本", d / "BAC009S0003W0199.wav", "cmn", "WAV")
            with tarfile.open(wav / f"{spk}.tar.gz", "w:gz") as tar:
                tar.add(d, arcname=f"{name}/{spk}")
    lines = [f"{k} {t}" for s in texts.values() for k, t in s.items()]
    lines.append("BAC009S0764W0999 这 句 没有 录音")  # transcribed, audio lost
    transcript = root / "data_aishell" / "transcript" / "aishell_transcript_v0.8.txt"
    transcript.parent.mkdir(parents=True)
    transcript.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")
    return root, texts


def test_aishell_stages_0_to_5(aishell, tiny_llm, tiny_whisper, tmp_path):
    corpus, texts = aishell
    data, exp = tmp_path / "data", tmp_path / "exp"
    out = run_recipe(
        "aishell",
        "--stage", "0", "--stop-stage", "4",
        "--corpus_dir", str(corpus), "--data_dir", str(data), "--exp_dir", str(exp),
        "--llm", str(tiny_llm), "--encoder", str(tiny_whisper),
        "--deepspeed", "", "--nproc_per_node", "1",
        "--train_extra", TRAIN_EXTRA, "--beams", "1 2", "--decode_extra", DECODE_EXTRA,
    )  # fmt: skip

    assert "unpacking 4 speaker tars" in out
    assert (
        f"{data}/train: 4 utterances; 1 audio file(s) without transcript, left out "
        "(e.g. BAC009S0003W0199)" in out
    ), out
    assert f"{data}/dev: 2 utterances\n" in out and f"{data}/test: 3 utterances\n" in out
    assert "1 transcript(s) without audio" in out and "BAC009S0764W0999" in out
    for name, utts in texts.items():
        d = data / name
        # stage 1 removed the word segmentation from the targets
        nospace = {k: t.replace(" ", "") for k, t in utts.items()}
        check_data_dir(d, nospace, {k: k[6:11] for k in utts})
        assert read_table(d / "text.orig") == utts
    # the default decode_dtype, bfloat16
    tag = "final_west_ctc0_bfloat16_tok4"
    results = check_experiment(exp, {"test": texts["test"]}, [1, 2], tag)
    assert "CER" in results

    # Stage 5: lists of the segmented words (text.orig), matched by character.
    out = run_recipe(
        "aishell", "--stage", "5", "--stop-stage", "5",
        "--corpus_dir", str(corpus), "--data_dir", str(data), "--exp_dir", str(exp),
        "--llm", str(tiny_llm), "--encoder", str(tiny_whisper), "--beams", "1 2",
        "--decode_extra", DECODE_EXTRA, *BIASING,
    )  # fmt: skip
    train_words = [t.split() for t in texts["train"].values()]
    test_words = {"test": {k: t.split() for k, t in texts["test"].items()}}
    check_biasing(data, exp, train_words, test_words, tag, [1, 2], char=True)
    assert "| B-CER" in out
