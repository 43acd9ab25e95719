"""west-serve with API keys: a real server started with a key on the command line, one in a
key file and one in the environment; every route but /health answers 401 in OpenAI's error
shape without a key or with a wrong one (the WebSocket too), and serves with any of the
three, given as a Bearer header (the `openai` client) or, on the WebSocket, as the
subprotocol browsers use."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import requests
import websockets
from server_process import Server
from websockets.exceptions import InvalidStatus

from west.serve.auth import read_keys

openai = pytest.importorskip("openai", reason="pip install openai (the dev extra)")

KEYS = ("flag-key-1", "file-key-2", "env-key-3")


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("auth")
    key_file = folder / "keys.txt"
    key_file.write_text(f"# the team's keys\n\n{KEYS[1]}\n")
    os.environ["WEST_API_KEY"] = KEYS[2]
    try:
        server = Server(
            random_model_dir,
            folder / "server.log",
            "--max_new_tokens",
            "4",
            "--api_key",
            KEYS[0],
            "--api_key_file",
            str(key_file),
        )
    finally:
        del os.environ["WEST_API_KEY"]
    # /health needs no key: wait_ready polls it
    yield server.wait_ready()
    server.stop()


@pytest.fixture(scope="module")
def wav(speech_dir) -> bytes:
    return sorted(speech_dir.glob("*.wav"))[0].read_bytes()


def _requests(server, wav):
    """(method, path, kwargs) of every HTTP route but /health."""
    return [
        ("POST", "/v1/audio/transcriptions", {"files": {"file": ("a.wav", wav)}}),
        ("GET", "/v1/models", {}),
        ("GET", "/metrics", {}),
        ("GET", "/", {}),
    ]


@pytest.mark.parametrize(
    "header, code",
    [
        (None, "missing_api_key"),
        ("Bearer wrong", "invalid_api_key"),
        ("Basic abc", "missing_api_key"),
    ],
)
def test_every_route_but_health_needs_the_key(server, wav, header, code):
    headers = {"Authorization": header} if header else {}
    for method, path, kwargs in _requests(server, wav):
        r = requests.request(method, server.url + path, headers=headers, timeout=60, **kwargs)
        assert r.status_code == 401, (path, r.status_code, r.text[:200])
        assert r.headers["WWW-Authenticate"] == "Bearer"
        if path == "/":  # the demo page, which asks for the key
            assert 'id="api-key"' in r.text
        else:
            error = r.json()["error"]
            assert error["code"] == code and error["type"] == "invalid_request_error"
            assert KEYS[0] not in r.text
    r = requests.get(f"{server.url}/health", headers=headers, timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_each_key_is_served(server, wav):
    for key in KEYS:
        headers = {"Authorization": f"Bearer {key}"}
        for method, path, kwargs in _requests(server, wav):
            r = requests.request(method, server.url + path, headers=headers, timeout=120, **kwargs)
            assert r.status_code == 200, (key, path, r.text[:200])


def test_the_openai_client_sends_its_key(server, speech_dir):
    path = sorted(speech_dir.glob("*.wav"))[0]
    good = openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEYS[0])
    with open(path, "rb") as f:
        assert isinstance(good.audio.transcriptions.create(model="west", file=f).text, str)
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong", max_retries=0)
    with open(path, "rb") as f, pytest.raises(openai.AuthenticationError) as e:
        bad.audio.transcriptions.create(model="west", file=f)
    assert e.value.status_code == 401 and e.value.code == "invalid_api_key"


async def _first_event(server, **connect) -> dict:
    url = f"ws://127.0.0.1:{server.port}/v1/realtime?intent=transcription"
    async with websockets.connect(url, open_timeout=30, **connect) as ws:
        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return {"event": event, "subprotocol": ws.subprotocol}


def test_realtime_needs_the_key(server):
    for connect in (
        {},
        {"additional_headers": {"Authorization": "Bearer wrong"}},
        {"subprotocols": ["realtime", "openai-insecure-api-key.wrong"]},
    ):
        with pytest.raises(InvalidStatus) as e:
            asyncio.run(_first_event(server, **connect))
        assert e.value.response.status_code == 401, connect
        assert json.loads(e.value.response.body)["error"]["code"] in (
            "missing_api_key",
            "invalid_api_key",
        )
    header = asyncio.run(
        _first_event(server, additional_headers={"Authorization": f"Bearer {KEYS[2]}"})
    )
    assert header["event"]["type"] == "transcription_session.created"
    browser = asyncio.run(
        _first_event(server, subprotocols=["realtime", f"openai-insecure-api-key.{KEYS[1]}"])
    )
    assert browser["event"]["type"] == "transcription_session.created"
    assert browser["subprotocol"] == "realtime"  # the key is never echoed


def test_key_files_and_their_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("WEST_API_KEY", "e1,e2")
    keys = tmp_path / "keys"
    keys.write_text("# comment\nk2\n\nk3\nk2\n")
    assert read_keys(["k1"], [keys]) == ["k1", "k2", "k3", "e1", "e2"]
    keys.write_text("k2\nnot one word\n")
    with pytest.raises(ValueError, match=rf"{keys}:2: an API key must be one word"):
        read_keys([], [keys])
    with pytest.raises(ValueError, match="cannot read the API key file"):
        read_keys([], [tmp_path / "missing"])
    monkeypatch.delenv("WEST_API_KEY")
    assert read_keys() == []
