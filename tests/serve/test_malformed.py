"""Every malformed request to a real west-serve is a 4xx in OpenAI's error shape, never a
500, and the server goes on: a corpus of broken requests (no boundary, truncated and garbage
bodies, duplicate and mistyped fields, headers that lie about the body's or the audio's
length), then a fuzz run (hypothesis) that mutates a valid upload's bytes."""

from __future__ import annotations

import io
import socket
import struct
import time

import numpy as np
import pytest
import requests
import soundfile as sf
from server_process import start_server

hypothesis = pytest.importorskip("hypothesis", reason="pip install hypothesis (the dev extra)")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

BOUNDARY = "westfuzzboundary"
LIMITS = ["--max_upload_mb", "1", "--max_audio_seconds", "30", "--body_timeout_s", "2"]


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from start_server(random_model_dir, log, *LIMITS)


@pytest.fixture(scope="module")
def wav(speech_dir) -> bytes:
    """A short real recording at 8 kHz (small: the fuzz run sends it often)."""
    x, sr = sf.read(sorted(speech_dir.glob("*.wav"))[0], dtype="float32")
    out = io.BytesIO()
    sf.write(out, x[:: sr // 8000], 8000, format="WAV", subtype="PCM_16")
    return out.getvalue()


def part(name: str, value: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"Content-Disposition: {disposition}\r\n"
    if ctype:
        head += f"Content-Type: {ctype}\r\n"
    return f"--{BOUNDARY}\r\n{head}\r\n".encode() + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def post(server, data: bytes, content_type: str | None = None, **kwargs) -> requests.Response:
    headers = {"Content-Type": content_type or f"multipart/form-data; boundary={BOUNDARY}"}
    return requests.post(
        f"{server.url}/v1/audio/transcriptions", data=data, headers=headers, timeout=60, **kwargs
    )


def assert_4xx(response, code: str | None = None, says: str | None = None) -> dict:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if says is not None:
        assert says in error["message"], error["message"]
    return error


def read_response(sock: socket.socket) -> str:
    """One HTTP response from a raw socket: its head and its Content-Length of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536) or pytest.fail(f"closed after {data!r}")
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(rest) < length:
        rest += sock.recv(65536) or pytest.fail(f"closed after {data + rest!r}")
    return (head + b"\r\n\r\n" + rest).decode("latin-1")


def lying_wav(wav: bytes, claimed_seconds: float) -> bytes:
    """`wav` whose RIFF and data chunk sizes claim `claimed_seconds` of audio."""
    info = sf.info(io.BytesIO(wav))
    data_at = wav.index(b"data") + 8
    size = int(claimed_seconds * info.samplerate) * 2
    riff = struct.pack("<I", data_at - 8 + size)
    return wav[:4] + riff + wav[8 : data_at - 4] + struct.pack("<I", size) + wav[data_at:]


def test_a_corpus_of_broken_requests_gets_4xx(server, wav):
    out = io.BytesIO()  # 40 s of quiet noise: past --max_audio_seconds 30, by its header
    sf.write(out, np.full(40 * 8000, 0.01, np.float32), 8000, format="FLAC")
    long_flac = out.getvalue()
    good = part("file", wav, "a.wav", "audio/wav")
    whole = body(good, part("model", b"whisper-1"))
    cases = [
        # (request body, content type, expected code or None, words in the message)
        (whole, "multipart/form-data", "invalid_form", "boundary"),
        (whole, "multipart/form-data; boundary=", "invalid_form", None),
        (whole, "multipart/form-data; boundary=other", "invalid_form", None),
        (b'{"file": "a.wav"}', "application/json", "invalid_request", "multipart/form-data"),
        (b"file=a.wav", "application/x-www-form-urlencoded", "invalid_request", None),
        (whole[: len(whole) // 2], None, None, None),  # truncated in the audio
        (whole[:40], None, None, None),  # truncated in a part's headers
        (np.random.default_rng(0).bytes(5000), None, None, None),  # garbage
        (b"--" + BOUNDARY.encode() + b"\r\ngarbage without a blank line", None, None, None),
        (body(good, good), None, "duplicate_field", "`file` sent 2 times"),
        (
            body(good, part("response_format", b"json"), part("response_format", b"text")),
            None,
            "duplicate_field",
            "`response_format`",
        ),
        (body(part("file", b"a.wav")), None, "invalid_type", "`file` is a text field"),
        (
            body(good, part("response_format", b"json", "f.txt", "text/plain")),
            None,
            "invalid_type",
            "`response_format` is a file part",
        ),
        (body(good, part("temperature", b"warm")), None, "invalid_value", "temperature"),
        (body(*[good] * 5), None, None, None),  # more files than the form takes
        (body(part("file", lying_wav(wav, 20.0), "a.wav")), None, "invalid_audio", "header"),
        (body(part("file", lying_wav(wav, 600.0), "a.wav")), None, "invalid_audio", "600"),
        (body(part("file", long_flac, "long.flac")), None, "audio_too_long", "40.0 s"),
        (body(part("file", b"RIFF" + bytes(40), "a.wav")), None, "invalid_audio", "a.wav"),
        (body(part("file", wav[:44], "a.wav")), None, None, "a.wav"),  # a header, no samples
        (body(part("file", b"\xff\xfb" * 300, "a.mp3")), None, "invalid_audio", "a.mp3"),
        (body(part("fi\xe9le".encode("latin-1"), wav, "a.wav")), None, None, None),
    ]
    for data, ctype, code, says in cases:
        response = post(server, data, ctype)
        assert_4xx(response, code, says)
    assert requests.get(f"{server.url}/health", timeout=10).ok


def test_the_lying_header_says_what_was_read(server, wav):
    error = assert_4xx(post(server, body(part("file", lying_wav(wav, 20.0), "a.wav"))))
    # e.g. "a.wav: its header says 20.00 s of audio but only 2.71 s could be read"
    assert "20.00 s" in error["message"] and "read" in error["message"], error


def test_413_before_the_body_is_read(server):
    """A 200 MB Content-Length is answered at once, with 1 KB of the body sent; the
    connection is then closed (and lingers so the client can read the answer)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    head = (
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        "Content-Length: 209715200\r\n\r\n"
    )
    start = time.monotonic()
    sock.sendall(head.encode() + part("file", bytes(1000), "a.wav"))
    answer = read_response(sock)
    assert time.monotonic() - start < 2.0
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "file_too_large" in answer and "connection: close" in answer.lower()
    sock.close()


def test_413_while_a_body_without_length_streams(server):
    def chunks():
        yield part("file", b"", "a.wav")[:-2]
        for _ in range(40):  # 40 x 64 KiB: past the 1 MB limit
            yield bytes(65536)
            time.sleep(0.01)

    try:
        response = post(server, chunks())  # chunked transfer encoding
    except requests.ConnectionError:
        pytest.fail("the connection was reset instead of answered")
    assert_4xx(response, "file_too_large")
    assert response.status_code == 413


def test_a_body_that_never_ends_gets_408(server):
    """Content-Length says more than is sent: the server waits --body_timeout_s, no more."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    head = (
        "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 5000\r\n\r\n"
    )
    start = time.monotonic()
    sock.sendall(head.encode() + part("file", bytes(100), "a.wav"))
    answer = read_response(sock)
    waited = time.monotonic() - start
    assert answer.startswith("HTTP/1.1 408"), answer[:200]
    assert 1.9 < waited < 5, waited
    assert sock.recv(100) == b""  # closed
    sock.close()
    assert requests.get(f"{server.url}/health", timeout=10).ok


def _mutations():
    """A valid upload's body, then one of: truncated, bytes overwritten, a span removed or
    repeated, or a boundary-like line inserted, at a position hypothesis picks."""
    at = st.floats(0, 1)
    return st.one_of(
        st.tuples(st.just("truncate"), at, st.just(b"")),
        st.tuples(st.just("overwrite"), at, st.binary(min_size=1, max_size=64)),
        st.tuples(st.just("remove"), at, st.integers(1, 400).map(lambda n: bytes(n))),
        st.tuples(st.just("repeat"), at, st.integers(1, 400).map(lambda n: bytes(n))),
        st.tuples(
            st.just("insert"),
            at,
            st.sampled_from(
                [
                    f"\r\n--{BOUNDARY}\r\n".encode(),
                    f"\r\n--{BOUNDARY}--\r\n".encode(),
                    b'\r\nContent-Disposition: form-data; name="file"; filename="b.wav"\r\n\r\n',
                    b"\r\n\r\n",
                    b"\x00" * 16,
                ]
            ),
        ),
    )


def mutate(data: bytes, kind: str, where: float, extra: bytes) -> bytes:
    i = int(where * len(data))
    if kind == "truncate":
        return data[:i]
    if kind == "overwrite":
        return data[:i] + extra + data[i + len(extra) :]
    if kind == "remove":
        return data[:i] + data[i + len(extra) :]
    if kind == "repeat":
        return data[:i] + data[i : i + len(extra)] * 2 + data[i + len(extra) :]
    return data[:i] + extra + data[i:]


def test_fuzzed_uploads_never_get_a_500(server, wav):
    valid = body(
        part("model", b"whisper-1"),
        part("file", wav, "a.wav", "audio/wav"),
        part("response_format", b"verbose_json"),
    )
    statuses = []

    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(_mutations(), min_size=1, max_size=3))
    def run(changes):
        data = valid
        for change in changes:
            data = mutate(data, *change)
        response = post(server, data)
        statuses.append(response.status_code)
        assert response.status_code < 500, (changes, response.text[:300])
        if response.status_code >= 400:
            assert_4xx(response)

    run()
    assert any(s >= 400 for s in statuses) and len(statuses) >= 100
    assert requests.get(f"{server.url}/health", timeout=10).ok
