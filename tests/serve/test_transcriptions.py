"""west-serve through real HTTP: the official `openai` client gets west-transcribe's texts
in every response format, a crowd of requests is batched without changing any text, and
bad input gets OpenAI-shaped errors while the server keeps serving.

The tiny model is random, so texts are garbage, but deterministic: they are compared
between paths (server vs west-transcribe, alone vs in a crowd), never to references.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf
import soxr
from server_process import MAX_NEW_TOKENS, long_recording, start_server

from west.bin.transcribe import main as transcribe

openai = pytest.importorskip("openai", reason="pip install openai (the dev extra)")


@pytest.fixture(scope="module")
def wavs(speech_dir) -> list[str]:
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from start_server(random_model_dir, log, "--max_batch_size", "16", "--max_wait_ms", "50")


@pytest.fixture(scope="module")
def inputs(wavs, tmp_path_factory) -> list[str]:
    """The test sentences (22.05 kHz wav), one as 48 kHz stereo flac, and a ~75 s wav."""
    out = tmp_path_factory.mktemp("inputs")
    x, sr = sf.read(wavs[1], dtype="float32")
    flac = out / "stereo.flac"
    x = soxr.resample(x, sr, 48000)
    sf.write(flac, np.stack([x, 0.5 * x], axis=1), 48000)
    return [*wavs, str(flac), str(long_recording(wavs, out / "long.wav"))]


@pytest.fixture(scope="module")
def expected(random_model_dir, inputs, tmp_path_factory) -> dict[str, str]:
    """west-transcribe's text per input (same model, same decoding settings)."""
    out = tmp_path_factory.mktemp("transcribe") / "hyp.txt"
    argv = ["--model_dir", str(random_model_dir), "--max_new_tokens", MAX_NEW_TOKENS]
    assert transcribe([*argv, "--device", "cpu", "--output", str(out), *inputs]) == 0
    return dict(line.split("\t", 1) for line in out.read_text().splitlines())


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def _transcribe(client, path: str, **kwargs):
    with open(path, "rb") as f:
        return client.audio.transcriptions.create(model="whisper-1", file=f, **kwargs)


def _cues(subtitles: str) -> list[str]:
    """The text lines of an srt or vtt body (no numbers, times or header)."""
    return [
        line
        for line in subtitles.splitlines()
        if line and line != "WEBVTT" and "-->" not in line and not line.isdigit()
    ]


def test_openai_client_gets_the_transcribe_texts_in_every_format(client, inputs, expected):
    long = inputs[-1]
    for path in (inputs[0], inputs[-2], long):  # short wav, stereo flac, long wav
        text = expected[path]
        assert text  # the random model says something, so equality means something
        assert _transcribe(client, path).text == text
        assert _transcribe(client, path, response_format="text").strip() == text
        verbose = _transcribe(
            client, path, response_format="verbose_json", timestamp_granularities=["segment"]
        )
        assert verbose.text == text
        assert " ".join(s.text for s in verbose.segments) == text
        assert verbose.duration == pytest.approx(sf.info(path).duration, abs=0.01)
        srt = _transcribe(client, path, response_format="srt")
        vtt = _transcribe(client, path, response_format="vtt")
        assert vtt.startswith("WEBVTT\n")
        assert " ".join(_cues(srt)) == " ".join(_cues(vtt)) == text
    # The long recording's segments are its windows, cut at pauses, in order.
    segments = _transcribe(client, long, response_format="verbose_json").segments
    assert len(segments) >= 3 and segments[0].start == 0.0
    assert all(a.end == b.start and b.end - b.start <= 28 for a, b in zip(segments, segments[1:]))
    assert segments[-1].end == pytest.approx(sf.info(long).duration, abs=0.01)
    srt = _transcribe(client, long, response_format="srt")
    assert re.search(r"^2\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}$", srt, re.MULTILINE)


def test_crowd_of_32_is_batched_and_texts_do_not_change(server, client, inputs, expected):
    files = [inputs[i % len(inputs)] for i in range(32)]
    batches_before = server.metric("west_batch_size_count")
    singles_before = server.metric('west_batch_size_bucket{le="1"}')
    with ThreadPoolExecutor(max_workers=16) as pool:
        texts = list(pool.map(lambda p: _transcribe(client, p).text, files))
    assert texts == [expected[p] for p in files]
    batches = server.metric("west_batch_size_count") - batches_before
    singles = server.metric('west_batch_size_bucket{le="1"}') - singles_before
    assert batches - singles > 0, "no batch held more than one window"
    assert server.metric('west_requests_total{status="200"}') >= 32
    assert server.metric("west_queue_windows") == 0
    assert server.metric("west_requests_in_flight") == 0


def _post(server, files=None, data=None, **kwargs) -> requests.Response:
    return requests.post(
        f"{server.url}/v1/audio/transcriptions", files=files, data=data, timeout=60, **kwargs
    )


def _assert_error(response, status: int, code: str, says: str, param: str | None = "file"):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == ("invalid_request_error" if status < 500 else "server_error")
    assert error["code"] == code and error["param"] == param
    assert says in error["message"], error["message"]


def test_bad_inputs_get_400_and_the_server_goes_on(server, client, inputs, expected, tmp_path):
    """(Every malformed request: tests/serve/test_malformed.py.)"""
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, np.float32), 16000)
    cases = [
        ("notes.wav", b"these are notes, not audio\n", "invalid_audio", "notes.wav: not readable"),
        ("empty.wav", b"", "empty_file", "empty.wav: empty file"),
        ("clip.m4a", b"\x00\x00\x00\x18ftypM4A " + bytes(200), "invalid_audio", "clip.m4a"),
    ]
    for name, data, code, says in cases:
        response = _post(server, files={"file": (name, data)}, data={"model": "whisper-1"})
        _assert_error(response, 400, code, says)
        assert server.metric(f'west_errors_total{{kind="{code}"}}') >= 1
    _assert_error(
        _post(server, data={"model": "whisper-1"}, files={"other": ("x", b"x")}),
        400,
        "missing_file",
        "no `file`",
    )
    _assert_error(
        _post(server, data={"model": "whisper-1"}),
        400,
        "invalid_request",
        "expected multipart/form-data",
        None,
    )
    with open(inputs[0], "rb") as f:
        audio = f.read()
    for field, value in (
        ("response_format", "mp3"),
        ("temperature", "7"),
        ("timestamp_granularities[]", "word"),
    ):
        response = _post(server, files={"file": ("a.wav", audio)}, data={field: value})
        _assert_error(response, 400, "invalid_value", repr(value), field)
    # The openai client raises its BadRequestError with the server's message.
    with pytest.raises(openai.BadRequestError, match="notes.wav: not readable"):
        client.audio.transcriptions.create(model="west", file=("notes.wav", b"not audio"))
    # Silence is not an error: there is nothing to say (no window is decoded).
    response = _post(server, files={"file": ("silent.wav", silent.read_bytes())})
    assert response.status_code == 200 and response.json() == {"text": ""}
    # Unknown fields are ignored, as by OpenAI; the server still answers.
    response = _post(
        server,
        files={"file": ("a.wav", audio)},
        data={"model": "x", "prompt": "hi", "language": "en", "chunking_strategy": "auto"},
    )
    assert response.status_code == 200 and response.json() == {"text": expected[inputs[0]]}
    assert requests.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"


def test_models_health_metrics_and_unknown_routes(server, client, random_model_dir):
    (model,) = client.models.list().data
    assert model.id == Path(random_model_dir).name and model.owned_by == "west"
    health = requests.get(f"{server.url}/health", timeout=10).json()
    assert health["status"] == "ok" and health["model"] == model.id
    metrics = requests.get(f"{server.url}/metrics", timeout=10)
    assert metrics.headers["content-type"].startswith("text/plain")
    for name in (
        "west_requests_total",
        "west_errors_total",
        "west_queue_windows",
        "west_batch_size_bucket",
        "west_request_seconds_bucket",
    ):
        assert f"# TYPE {name.removesuffix('_bucket')} " in metrics.text, name
    missing = requests.get(f"{server.url}/v1/nothing", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = requests.get(f"{server.url}/v1/audio/transcriptions", timeout=10)
    assert wrong.status_code == 405 and json.loads(wrong.text)["error"]["param"] is None
