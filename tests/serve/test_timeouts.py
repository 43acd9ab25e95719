"""west-serve drops slow clients (west.serve.timeouts): with --header_timeout_s 2, a crowd
of sockets that send their headers a byte at a time each get a 408 and are closed within
a few seconds, while normal requests are served meanwhile; headers that arrive promptly,
a slow body, a keep-alive connection and a WebSocket are not cut.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from server_process import start_server

HEADER_TIMEOUT = 2.0
SLOW_CLIENTS = 30
SLOW_REQUEST = b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"  # never ends
BYTE_EVERY = 0.2  # seconds


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from start_server(random_model_dir, log, "--header_timeout_s", str(HEADER_TIMEOUT))


@pytest.fixture(scope="module")
def wav(speech_dir) -> Path:
    return sorted(speech_dir.glob("*.wav"))[0]


def _transcribe(server, wav: Path, session=requests) -> requests.Response:
    return session.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": (wav.name, wav.read_bytes())},
        data={"model": "whisper-1"},
        timeout=60,
    )


def _slow_client(port: int) -> tuple[bytes, float]:
    """SLOW_REQUEST a byte every BYTE_EVERY s until the server answers; what the socket
    read until EOF, and the seconds from connecting to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        opened = time.monotonic()
        for byte in SLOW_REQUEST:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed by the server
                break
            if select.select([sock], [], [], BYTE_EVERY)[0]:
                break
        received = b""
        while chunk := sock.recv(4096):  # EOF ends it; a 10 s timeout fails the test
            received += chunk
        return received, time.monotonic() - opened


def test_slow_headers_get_408_and_are_closed_while_others_are_served(server, wav):
    alone = time.monotonic()
    assert _transcribe(server, wav).status_code == 200
    alone = time.monotonic() - alone

    with ThreadPoolExecutor(SLOW_CLIENTS) as pool:
        slow = [pool.submit(_slow_client, server.port) for _ in range(SLOW_CLIENTS)]
        time.sleep(0.5)  # all of them connected and trickling
        start = time.monotonic()
        assert requests.get(f"{server.url}/health", timeout=10).ok
        health = time.monotonic() - start
        start = time.monotonic()
        response = _transcribe(server, wav)
        crowded = time.monotonic() - start
        assert not any(f.done() for f in slow), "a slow client was closed before its deadline"
        results = [f.result() for f in slow]

    assert response.status_code == 200, response.text
    assert response.json()["text"]
    assert health < 1.0
    assert crowded < alone + 1.0, f"{crowded:.2f} s among slow clients, {alone:.2f} s alone"
    for received, seconds in results:
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
        assert b"connection: close" in head.lower()
        error = json.loads(body)["error"]
        assert (error["type"], error["code"], error["param"]) == (
            "invalid_request_error",
            "request_timeout",
            None,
        )
        assert HEADER_TIMEOUT - 0.1 < seconds < 2 * HEADER_TIMEOUT
    assert requests.get(f"{server.url}/health", timeout=10).ok


def test_prompt_headers_with_a_slow_body_are_answered(server, wav):
    """The deadline ends with the headers: a body may take longer (the app times bodies)."""
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'
        + wav.read_bytes()
        + b'\r\n--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'
    )
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.putrequest("POST", "/v1/audio/transcriptions")
    conn.putheader("Content-Type", "multipart/form-data; boundary=b")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    half = len(body) // 2
    conn.send(body[:half])
    time.sleep(HEADER_TIMEOUT + 0.5)
    conn.send(body[half:])
    response = conn.getresponse()
    assert response.status == 200, response.read()
    assert json.loads(response.read())["text"]
    conn.close()


def test_keep_alive_connection_serves_requests_in_a_row(server, wav):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("GET", "/health")
    response = conn.getresponse()
    assert response.status == 200
    response.read()
    sock = conn.sock
    time.sleep(HEADER_TIMEOUT / 2)  # idle, within both the keep-alive and header limits
    conn.request("GET", "/v1/models")
    response = conn.getresponse()
    assert response.status == 200
    response.read()
    assert conn.sock is sock, "the connection was not reused"
    conn.close()

    with requests.Session() as session:  # the same through requests' connection pool
        for _ in range(2):
            assert _transcribe(server, wav, session).status_code == 200


def test_websocket_outlives_the_header_timeout(server):
    websockets_sync = pytest.importorskip("websockets.sync.client")
    url = f"ws://127.0.0.1:{server.port}/v1/realtime?intent=transcription"
    with websockets_sync.connect(url, open_timeout=30) as ws:
        kinds = [json.loads(ws.recv(30))["type"] for _ in range(2)]
        assert kinds == ["transcription_session.created", "session.created"]
        time.sleep(HEADER_TIMEOUT + 1)
        ws.send(json.dumps({"type": "transcription_session.update", "session": {}}))
        assert json.loads(ws.recv(30))["type"] == "transcription_session.updated"
