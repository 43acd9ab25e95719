"""west-transcribe --format txt / tsv / srt / vtt / json (and --output_dir) on real espeak-ng
recordings, with a tiny random model that has a CTC branch (word times) and one that has
not (segment times, and a warning). Run in-process.

The models are random, so texts and times are garbage, but deterministic: the files are
checked against the API's own texts and against what any timing must satisfy (in order,
inside the recording), never against references.
"""

from __future__ import annotations

import json
import re

import pytest
import soundfile as sf

import west
from west.bin.transcribe import main

FLAGS = ["--max_new_tokens", "8", "--batch_size", "4", "--device", "cpu"]
TIME = r"(\d\d):(\d\d):(\d\d)[.,](\d\d\d)"

# Tiny matrices: on a shared 2-core machine, threads only wait for each other.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ctc_model_dir(model_args, tmp_path_factory):
    from conftest import SENTENCES
    from ctc_models import write_ctc_model_dir

    return write_ctc_model_dir(model_args, tmp_path_factory.mktemp("ctc_model"), SENTENCES)


@pytest.fixture(scope="module")
def wavs(speech_dir):
    return sorted(str(p) for p in speech_dir.glob("*.wav"))[:3]


@pytest.fixture(scope="module")
def api_texts(ctc_model_dir, wavs):
    model = west.load(ctc_model_dir, max_new_tokens=8, batch_size=4)
    return dict(zip(wavs, model.transcribe(wavs)))


def _seconds(match) -> float:
    h, m, s, ms = (int(g) for g in match)
    return 3600 * h + 60 * m + s + ms / 1000


def _subtitle_cues(body: str) -> list[tuple[float, float, str]]:
    """(start, end, text lines joined by spaces) of each srt or vtt cue."""
    cues = []
    for block in body.strip().split("\n\n"):
        lines = block.splitlines()
        at = next((i for i, line in enumerate(lines) if "-->" in line), None)
        if at is None:
            continue  # the WEBVTT header
        start, end = re.findall(TIME, lines[at])
        cues.append((_seconds(start), _seconds(end), " ".join(lines[at + 1 :])))
    return cues


def _check_cues(cues, text: str, duration: float) -> None:
    assert " ".join(c[2] for c in cues) == text
    for start, end, _ in cues:
        assert 0.0 <= start <= end <= duration + 1e-3
    assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:]))


def test_srt_and_vtt_files_per_input(ctc_model_dir, wavs, api_texts, tmp_path):
    out = tmp_path / "subs"
    argv = ["--model_dir", str(ctc_model_dir), *FLAGS, "--output_dir", str(out)]
    for fmt in ("srt", "vtt"):
        assert main([*argv, "--format", fmt, *wavs]) == 0
        for w in wavs:
            body = (out / f"{w.rsplit('/', 1)[1][:-4]}.{fmt}").read_text(encoding="utf-8")
            assert body.startswith("WEBVTT\n\n" if fmt == "vtt" else "1\n00:")
            if fmt == "srt":
                numbers = [b.splitlines()[0] for b in body.strip().split("\n\n")]
                assert numbers == [str(i) for i in range(1, len(numbers) + 1)]
            _check_cues(_subtitle_cues(body), api_texts[w], sf.info(w).duration)


def test_json_lines_tsv_and_txt(ctc_model_dir, wavs, api_texts, tmp_path, capsys):
    argv = ["--model_dir", str(ctc_model_dir), *FLAGS]
    capsys.readouterr()
    assert main([*argv, "--format", "json", *wavs]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["name"] for r in records] == wavs
    for r, w in zip(records, wavs):
        assert r["text"] == api_texts[w]
        assert r["duration"] == pytest.approx(sf.info(w).duration, abs=1e-3)
        words = [x for s in r["segments"] for x in s["words"]]
        assert " ".join(x["word"] for x in words) == r["text"]
        assert all(0 <= x["start"] <= x["end"] <= r["duration"] for x in words)
        assert all(0 <= x["confidence"] <= 1 for x in words)

    tsv = tmp_path / "one.tsv"
    assert main([*argv, "--format", "tsv", "--output", str(tsv), wavs[0]]) == 0
    header, *rows = tsv.read_text(encoding="utf-8").splitlines()
    assert header == "start\tend\ttext" and rows
    rows = [row.split("\t") for row in rows]
    assert " ".join(text for _, _, text in rows) == api_texts[wavs[0]]
    times = [int(t) for start, end, _ in rows for t in (start, end)]
    assert times == sorted(times) and times[-1] <= 1000 * sf.info(wavs[0]).duration + 1

    assert main([*argv, "--format", "txt", wavs[1]]) == 0
    assert capsys.readouterr().out == api_texts[wavs[1]] + "\n"


def test_a_model_without_ctc_writes_segment_times_and_says_so(
    random_model_dir, wavs, capsys, caplog
):
    capsys.readouterr()
    argv = ["--model_dir", str(random_model_dir), "--format", "srt", *FLAGS, wavs[0]]
    assert main(argv) == 0
    (cue,) = _subtitle_cues(capsys.readouterr().out)
    assert cue[0] == 0.0 and cue[1] == pytest.approx(sf.info(wavs[0]).duration, abs=1e-3)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("no CTC branch, so no word timestamps" in m for m in warnings)
    assert "Traceback" not in caplog.text


def test_output_flags_are_checked_before_the_model_loads(ctc_model_dir, wavs, tmp_path, caplog):
    argv = ["--model_dir", str(tmp_path / "no_model"), *FLAGS]  # never loaded
    assert main([*argv, "--format", "srt", *wavs[:2]]) == 1
    assert "give --output_dir (2 inputs)" in caplog.text
    assert main([*argv, "--output_dir", str(tmp_path), wavs[0]]) == 1
    assert "--output_dir needs a --format of its own" in caplog.text
    twin = tmp_path / "twin"
    twin.mkdir()
    (twin / "utt0.wav").write_bytes(open(wavs[0], "rb").read())
    assert (
        main(
            [
                *argv,
                "--format",
                "vtt",
                "--output_dir",
                str(tmp_path),
                wavs[0],
                str(twin / "utt0.wav"),
            ]
        )
        == 1
    )
    assert "would both be written to" in caplog.text
