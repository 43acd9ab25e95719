"""Hotwords from the command line: west-recognize's --hotwords and a data list's per-utterance
"context", west-transcribe's --hotwords, and the errors for bad lists.

The tiny model is random; a bonus of 40 per matched token makes a hotword win wherever it
is allowed, so whether it appears in the text says whether the list reached the search.
"""

from __future__ import annotations

import json

import pytest

from west.bin.recognize import main as recognize
from west.bin.transcribe import main as transcribe
from west.data.dataset import read_jsonl
from west.data.kaldi import DataError

pytestmark = pytest.mark.usefixtures("one_thread")
TOKENS = ["--max_new_tokens", "6", "--device", "cpu"]


def _texts(path) -> dict[str, str]:
    return dict((line.split(" ", 1) + [""])[:2] for line in path.read_text().splitlines())


@pytest.fixture(scope="module")
def data(speech_dir, tmp_path_factory):
    """The test sentences' data list, utt0 with a hotword list of its own."""
    lines = [json.loads(x) for x in (speech_dir / "data.jsonl").read_text().splitlines()][:3]
    lines[0]["context"] = ["Okafor"]
    path = tmp_path_factory.mktemp("hotwords") / "data.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def test_recognize_reads_each_utterances_context_and_the_common_list(
    random_model_dir, data, tmp_path
):
    base = ["--model_dir", str(random_model_dir), "--data_path", str(data), *TOKENS]
    recognize([*base, "--result_path", str(tmp_path / "plain")])
    recognize([*base, "--result_path", str(tmp_path / "own"), "--hotword_bonus", "40"])
    plain, own = _texts(tmp_path / "plain"), _texts(tmp_path / "own")
    assert "okafor" in own["utt0"].lower() and "okafor" not in plain["utt0"].lower()
    assert own["utt1"] == plain["utt1"] and own["utt2"] == plain["utt2"]  # no list: unchanged
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("# names\nCimabue\n")
    recognize(
        [*base, "--result_path", str(tmp_path / "all"), "--hotword_bonus", "40"]
        + ["--hotwords", str(hotwords)]
    )
    every = _texts(tmp_path / "all")
    assert all("cimabue" in every[k].lower() for k in ("utt1", "utt2"))


def test_recognize_refuses_a_missing_hotwords_file(random_model_dir, data, tmp_path):
    argv = ["--model_dir", str(random_model_dir), "--data_path", str(data)]
    argv += ["--result_path", str(tmp_path / "x"), "--hotwords", str(tmp_path / "names.txt")]
    with pytest.raises(SystemExit, match="names.txt: no such hotwords file"):
        recognize([*argv, *TOKENS])


def test_a_bad_context_field_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"wav": "a.wav"}\n{"wav": "b.wav", "context": "Okafor"}\n')
    with pytest.raises(DataError, match=r'bad.jsonl:2: "context" must be a list of strings'):
        read_jsonl(path)


def test_transcribe_takes_hotwords(random_model_dir, speech_dir, tmp_path):
    wav = str(sorted(speech_dir.glob("*.wav"))[0])
    out = tmp_path / "hyp.txt"
    argv = ["--model_dir", str(random_model_dir), *TOKENS, "--output", str(out)]
    assert transcribe([*argv, "--hotwords", "Okafor", "--hotword_bonus", "40", wav]) == 0
    assert "okafor" in out.read_text().lower()
    assert transcribe([*argv, "--hotwords", "./names.txt", wav]) == 1  # no such file
