"""west-serve under pressure: too large (413), queue full (503 + Retry-After), a client that
leaves mid-request (its windows dropped), SIGTERM with a request in flight (answered,
then exit 0). One server with small limits: one window decoded at a time, 4 queued.
"""

from __future__ import annotations

import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import soundfile as sf
from server_process import long_recording, start_server

LIMITS = ["--max_batch_size", "1", "--max_queue", "4", "--max_upload_mb", "2"]


@pytest.fixture(scope="module")
def wavs(speech_dir) -> list[str]:
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from start_server(random_model_dir, log, *LIMITS)


@pytest.fixture(scope="module")
def long_wav(wavs, tmp_path_factory):
    """~75 s at 11 kHz (3 windows, 1.6 MB): under the 2 MB limit."""
    return long_recording(wavs, tmp_path_factory.mktemp("long") / "long.wav", rate=11025)


def _post(server, data: bytes, name: str = "a.wav") -> requests.Response:
    return requests.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": (name, data)},
        data={"model": "whisper-1"},
        timeout=120,
    )


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def test_too_large_is_413_and_queue_full_is_503(server, wavs, long_wav, tmp_path):
    big = tmp_path / "big.wav"
    sf.write(big, np.random.default_rng(0).normal(0, 0.1, 70 * 16000), 16000)  # 2.2 MB
    response = _post(server, big.read_bytes(), "big.wav")
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "file_too_large" and "2 MB" in error["message"]

    # Six long recordings at once: 18 windows for a queue of 4, decoded one at a time.
    data = open(long_wav, "rb").read()
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda _: _post(server, data), range(6)))
    busy = [r for r in answers if r.status_code == 503]
    done = [r for r in answers if r.status_code == 200]
    assert busy and done and len(busy) + len(done) == 6, [r.status_code for r in answers]
    assert int(busy[0].headers["Retry-After"]) >= 1
    assert busy[0].json()["error"]["code"] == "server_busy"
    assert len({r.json()["text"] for r in done}) == 1  # the same recording, the same text
    assert server.metric("west_queue_windows") == 0
    assert requests.get(f"{server.url}/health", timeout=10).ok


def _raw_request(server, data: bytes) -> socket.socket:
    """Send a whole transcription request on a raw socket, and leave it open."""
    boundary = "westboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="long.wav"\r\n'
        f"Content-Type: audio/wav\r\n\r\n".encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(head.encode() + body)
    return sock


def test_client_that_leaves_frees_its_slot(server, long_wav):
    dropped = server.metric('west_errors_total{kind="client_disconnected"}')
    sock = _raw_request(server, open(long_wav, "rb").read())
    _wait_for(lambda: server.metric("west_queue_windows") >= 2, "windows queued")
    sock.close()
    _wait_for(
        lambda: server.metric('west_errors_total{kind="client_disconnected"}') == dropped + 1,
        "the disconnect noticed",
    )
    _wait_for(lambda: server.metric("west_queue_windows") == 0, "its windows dropped")
    assert server.metric("west_requests_in_flight") == 0
    assert requests.get(f"{server.url}/health", timeout=10).ok


def test_sigterm_answers_the_request_in_flight_then_exits_0(server, long_wav):
    data = open(long_wav, "rb").read()
    answer = {}
    thread = threading.Thread(target=lambda: answer.update(r=_post(server, data)))
    thread.start()
    _wait_for(lambda: server.metric("west_queue_windows") >= 2, "the request in flight")
    assert server.stop() == 0
    thread.join(60)
    response = answer["r"]
    assert response.status_code == 200 and response.json()["text"]
    assert "Waiting for" in server.log_tail() or "Shutting down" in server.log_tail()
