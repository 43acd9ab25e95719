"""west-serve's word timestamps through real HTTP and the official `openai` client: a tiny
random model with a CTC branch answers verbose_json with OpenAI's top-level `words` when
asked (timestamp_granularities[]=word) and srt / vtt cut from its words; a model without a
CTC branch answers word granularity with a 400 that says it has only segment times.

Random models: texts and times are garbage but deterministic, so they are checked against
west-transcribe's text and what any timing must satisfy, never against references.
"""

from __future__ import annotations

import pytest
import requests
import soundfile as sf
from server_process import MAX_NEW_TOKENS, Server, long_recording, start_server

from west.bin.transcribe import main as transcribe

openai = pytest.importorskip("openai", reason="pip install openai (the dev extra)")


@pytest.fixture(scope="module")
def wavs(speech_dir) -> list[str]:
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


@pytest.fixture(scope="module")
def ctc_model_dir(model_args, tmp_path_factory):
    from conftest import SENTENCES
    from ctc_models import write_ctc_model_dir

    return write_ctc_model_dir(model_args, tmp_path_factory.mktemp("ctc_model"), SENTENCES)


@pytest.fixture(scope="module")
def inputs(wavs, tmp_path_factory) -> list[str]:
    """Two test sentences and a ~50 s recording (several windows)."""
    long = long_recording(wavs, tmp_path_factory.mktemp("inputs") / "long.wav", repeats=3)
    return [wavs[0], wavs[1], str(long)]


@pytest.fixture(scope="module")
def expected(ctc_model_dir, inputs, tmp_path_factory) -> dict[str, str]:
    """west-transcribe's text per input (same model, same decoding settings)."""
    out = tmp_path_factory.mktemp("transcribe") / "hyp.txt"
    argv = ["--model_dir", str(ctc_model_dir), "--max_new_tokens", MAX_NEW_TOKENS]
    assert transcribe([*argv, "--device", "cpu", "--output", str(out), *inputs]) == 0
    return dict(line.split("\t", 1) for line in out.read_text().splitlines())


@pytest.fixture(scope="module")
def client(ctc_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    for server in start_server(ctc_model_dir, log, "--max_wait_ms", "20"):
        yield openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def _transcribe(client, path: str, **kwargs):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


def test_verbose_json_lists_the_words_when_asked(client, inputs, expected):
    for path in inputs:
        text = expected[path]
        assert text  # the random model says something, so the checks mean something
        duration = sf.info(path).duration
        got = _transcribe(
            client,
            path,
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
        assert got.text == text and " ".join(s.text for s in got.segments) == text
        assert " ".join(w.word for w in got.words) == text
        previous = 0.0
        for w in got.words:
            assert previous <= w.start <= w.end <= duration + 1e-3
            assert 0.0 <= w.model_extra["confidence"] <= 1.0  # WeST's addition
            previous = w.end
        # Each word inside the segment (window) it was said in.
        words = iter(got.words)
        for s in got.segments:
            for _ in s.text.split():
                w = next(words)
                assert s.start - 1e-3 <= w.start <= w.end <= s.end + 1e-3
    # Segment granularity alone (the default): no words, as OpenAI answers.
    plain = _transcribe(client, inputs[0], response_format="verbose_json")
    assert plain.words is None and plain.segments


def test_subtitles_are_cut_from_the_words(client, inputs, expected):
    long = inputs[-1]
    srt = _transcribe(client, long, response_format="srt")
    blocks = [b.splitlines() for b in srt.strip().split("\n\n")]
    assert [b[0] for b in blocks] == [str(i) for i in range(1, len(blocks) + 1)]
    assert " ".join(" ".join(b[2:]) for b in blocks) == expected[long]
    assert all(len(b) <= 4 and all(len(line) <= 42 for line in b[2:]) for b in blocks)
    vtt = _transcribe(client, long, response_format="vtt")
    assert vtt.startswith("WEBVTT\n") and vtt.count(" --> ") == len(blocks)


def test_a_model_without_ctc_has_only_segment_times(random_model_dir, wavs, tmp_path):
    server = Server(random_model_dir, tmp_path / "server.log", "--max_new_tokens", MAX_NEW_TOKENS)
    try:
        server.wait_ready()
        with open(wavs[0], "rb") as f:
            audio = f.read()
        for key in ("timestamp_granularities[]", "timestamp_granularities"):
            response = requests.post(
                f"{server.url}/v1/audio/transcriptions",
                files={"file": ("a.wav", audio)},
                data={"response_format": "verbose_json", key: "word"},
                timeout=60,
            )
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "invalid_value" and error["param"] == key
            assert "only segment times" in error["message"]
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.BadRequestError, match="no CTC branch"):
            _transcribe(
                client, wavs[0], response_format="verbose_json", timestamp_granularities=["word"]
            )
        # Segments still work.
        ok = _transcribe(
            client, wavs[0], response_format="verbose_json", timestamp_granularities=["segment"]
        )
        assert ok.segments and ok.words is None
    finally:
        server.stop()
