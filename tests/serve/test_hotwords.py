"""Hotwords over real HTTP and a real WebSocket: OpenAI's `prompt` field, WeST's `hotwords`
field and a Realtime session's prompt all reach the search (the server's own --hotwords are
west-transcribe's flag: tests/bin/test_hotwords_cli.py).

The tiny model is random; a bonus of 40 per matched token makes a hotword win wherever it
is allowed, so whether it appears in the text says whether the list reached the search.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import soundfile as sf
import soxr
from server_process import start_server

websockets_sync = pytest.importorskip("websockets.sync.client")


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from start_server(random_model_dir, log, "--hotword_bonus", "40")


@pytest.fixture(scope="module")
def wav(speech_dir) -> str:
    return str(sorted(speech_dir.glob("*.wav"))[0])


def _post(server, wav, **data) -> requests.Response:
    with open(wav, "rb") as f:
        return requests.post(
            f"{server.url}/v1/audio/transcriptions",
            files={"file": ("a.wav", f, "audio/wav")},
            data=data,
            timeout=120,
        )


def test_the_prompt_and_the_hotwords_field_reach_the_search(server, wav):
    plain = _post(server, wav)
    assert plain.status_code == 200, plain.text
    # (matched in either case of its first letter: west.models.context.spellings)
    text = plain.json()["text"].lower()
    assert "okafor" not in text and "cimabue" not in text and "brahms" not in text
    prompted = _post(server, wav, prompt="Okafor").json()["text"].lower()
    assert "okafor" in prompted
    field = _post(server, wav, hotwords="Cimabue").json()["text"].lower()
    assert "cimabue" in field
    # running text gives its names only: "the" and "of" get no bonus
    running = _post(server, wav, prompt="a talk about the music of Brahms and friends").json()
    assert "brahms" in running["text"].lower()


def test_a_hotwords_file_part_is_refused(server, wav):
    with open(wav, "rb") as f:
        r = requests.post(
            f"{server.url}/v1/audio/transcriptions",
            files={"file": ("a.wav", f, "audio/wav"), "hotwords": ("h.txt", b"x", "text/plain")},
            timeout=60,
        )
    assert r.status_code == 400 and r.json()["error"]["param"] == "hotwords"


def test_a_realtime_session_prompt_reaches_the_search(server, wav):
    x, sr = sf.read(wav, dtype="float32")
    pcm = np.round(np.clip(soxr.resample(x, sr, 16000), -1, 1) * 32767).astype("<i2")
    url = f"ws://127.0.0.1:{server.port}/v1/realtime?intent=transcription"
    with websockets_sync.connect(url, open_timeout=30) as ws:
        for _ in range(2):  # transcription_session.created, session.created
            json.loads(ws.recv(30))
        bad = {"input_audio_transcription": {"prompt": 3}}
        ws.send(json.dumps({"type": "transcription_session.update", "session": bad}))
        error = json.loads(ws.recv(30))
        assert error["type"] == "error" and error["error"]["code"] == "invalid_value"
        session = {
            "input_audio_format": {"type": "audio/pcm", "rate": 16000},
            "input_audio_transcription": {"prompt": "Okafor"},
            "turn_detection": None,
        }
        ws.send(json.dumps({"type": "transcription_session.update", "session": session}))
        updated = json.loads(ws.recv(30))
        assert updated["session"]["input_audio_transcription"]["prompt"] == "Okafor"
        import base64

        audio = base64.b64encode(pcm.tobytes()).decode()
        ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while True:
            event = json.loads(ws.recv(60))
            if event["type"].endswith("transcription.completed"):
                break
    assert "okafor" in event["transcript"].lower()
