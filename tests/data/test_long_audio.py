"""Utterances longer than the encoder's 30 s, as LibriSpeech's test sets hold (up to ~35 s).

validate() refuses, cuts, leaves out or keeps them; west-recognize keeps them and decodes
each in windows cut at pauses, one line per key, so west-score finds every reference.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SENTENCES, synthesize
from transformers import AutoTokenizer

from west.data.audio import SAMPLE_RATE, load_audio
from west.data.dataset import DataError, SpeechDataset, read_jsonl, validate

ROOT = Path(__file__).parents[2]
LONG_KEY = "1089-134686-0000"


# ---- validate(long_audio=...) ---------------------------------------------------------


@pytest.fixture
def long_list(tmp_path) -> Path:
    """A jsonl with a 31 s utterance (line 1) and a 2 s one (line 2)."""
    lines = []
    for key, seconds in (("long", 31), ("short", 2)):
        wav = tmp_path / f"{key}.wav"
        sf.write(wav, np.full(SAMPLE_RATE * seconds, 0.1, dtype=np.float32), SAMPLE_RATE)
        lines.append(json.dumps({"key": key, "wav": str(wav), "txt": "x"}))
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_validate_long_audio_modes(long_list, caplog):
    where = f"{long_list}:1 (key long)"
    with pytest.raises(
        DataError, match=re.escape(where) + r": .* lasts 31.00 s, longer than the 30 s"
    ):
        validate(read_jsonl(long_list))
    with pytest.raises(DataError, match="31.00 s, longer than"):
        validate(read_jsonl(long_list), long_audio="error")

    with caplog.at_level("WARNING"):
        cut = validate(read_jsonl(long_list), long_audio="cut")
    assert f"{where}: " in caplog.text and "cut to 30 s" in caplog.text
    assert cut[0].duration == cut[0].cut_seconds == 30.0
    assert SpeechDataset(cut, 80)[0]["mel"].shape == (80, 3000)
    # The older spelling until west-train moves to long_audio=.
    assert validate(read_jsonl(long_list), cut_long=True)[0].cut_seconds == 30.0

    caplog.clear()
    with caplog.at_level("WARNING"):
        kept = validate(read_jsonl(long_list), long_audio="skip")
    assert [u.key for u in kept] == ["short"]
    assert f"{where}: " in caplog.text and "31.00 s" in caplog.text and "left out" in caplog.text
    assert "left out 1 utterance(s) of 2 longer than 30 s" in caplog.text

    caplog.clear()
    with caplog.at_level("WARNING"):
        whole = validate(read_jsonl(long_list), long_audio="keep")
    assert [(u.key, u.duration, u.cut_seconds) for u in whole] == [
        ("long", 31.0, None),
        ("short", 2.0, None),
    ]
    assert not caplog.text

    with pytest.raises(ValueError, match="long_audio='drop'"):
        validate(read_jsonl(long_list), long_audio="drop")


# ---- west-recognize on a LibriSpeech-like test set -----------------------------------


@pytest.fixture(scope="module")
def librispeech(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """<corpus>/LibriSpeech/test-clean/1089/134686/: a 33-34.5 s utterance (sentences joined
    with 0.4 s pauses) and two short ones, 16 kHz FLAC, with the chapter's trans.txt."""
    tmp = tmp_path_factory.mktemp("librispeech")
    chapter = tmp / "corpus" / "LibriSpeech" / "test-clean" / "1089" / "134686"
    chapter.mkdir(parents=True)
    spoken = [
        load_audio(synthesize(sentence, tmp / f"s{i}.wav", speed=120))
        for i, sentence in enumerate(SENTENCES)
    ]
    pause = np.zeros(int(0.4 * SAMPLE_RATE), dtype=np.float32)
    pieces, words, i = [], [], 0
    # Whole sentences while they fit under 34.5 s, then silence up to 33 s.
    while len(words) < 3 * len(SENTENCES):
        audio = spoken[i % len(SENTENCES)]
        n = sum(len(p) for p in pieces)
        if n + len(pause) + len(audio) > 34.5 * SAMPLE_RATE:
            break
        pieces += [pause, audio] if pieces else [audio]
        words.append(SENTENCES[i % len(SENTENCES)])
        i += 1
    n = sum(len(p) for p in pieces)
    pieces.append(np.zeros(max(0, 33 * SAMPLE_RATE - n), dtype=np.float32))
    texts = {LONG_KEY: " ".join(words)}
    sf.write(chapter / f"{LONG_KEY}.flac", np.concatenate(pieces), SAMPLE_RATE)
    for n, sentence in ((1, SENTENCES[0]), (2, SENTENCES[3])):
        key = f"1089-134686-{n:04d}"
        sf.write(
            chapter / f"{key}.flac",
            load_audio(synthesize(sentence, tmp / f"{key}.wav")),
            SAMPLE_RATE,
        )
        texts[key] = sentence
    (chapter / "1089-134686.trans.txt").write_text(
        "".join(f"{k} {t.upper()}\n" for k, t in texts.items())
    )
    return tmp, texts


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, **kw)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_recognize_decodes_long_utterances_in_windows(
    librispeech, random_model_dir, tokenizer_dir, tmp_path
):
    corpus, texts = librispeech
    assert (
        33
        <= sf.info(
            corpus / "corpus/LibriSpeech/test-clean/1089/134686" / f"{LONG_KEY}.flac"
        ).duration
        < 35
    )
    data = tmp_path / "data" / "test_clean"
    _run(
        ["bash", "local/data_prep.sh", str(corpus / "corpus/LibriSpeech/test-clean"), str(data)],
        cwd=ROOT / "examples" / "librispeech",
    )
    model_dir = random_model_dir
    result = tmp_path / "decode" / "text"
    proc = _run(
        [
            sys.executable,
            "-m",
            "west.bin.recognize",
            "--model_dir",
            str(model_dir),
            "--data_path",
            str(data / "data.jsonl"),
            "--result_path",
            str(result),
            "--max_new_tokens",
            "5",
        ]
    )
    log = proc.stdout + proc.stderr
    hyps = dict(line.split(" ", 1) for line in result.read_text(encoding="utf-8").splitlines())
    assert sorted(hyps) == sorted(texts)
    # Two windows of up to 5 tokens each: more tokens than one window could give.
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert len(tokenizer(hyps[LONG_KEY]).input_ids) > 5, hyps
    assert re.search(rf"\(key {LONG_KEY}\): 3\d\.\d s, cut at pauses into 2 windows", log), log
    assert f"1 utterance(s) longer than 30 s decoded in windows cut at pauses: {LONG_KEY}" in log

    score = _run([sys.executable, "-m", "west.bin.score", str(data / "text"), str(result)])
    assert "%WER" in score.stdout and "[PARTIAL]" not in score.stdout
    assert f"/ {sum(len(t.split()) for t in texts.values())}," in score.stdout
