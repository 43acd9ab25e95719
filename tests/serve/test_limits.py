"""west-serve's back-pressure and what it does with recordings that hold no speech, on a
real server (tiny random model, one window decoded at a time): a crowd that would wait
longer than --max_wait_s is refused at once with 503 and Retry-After; white noise and an
long silence give empty text, decoded in chunks without the server's memory
growing by the recording's size."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest
import requests
import soundfile as sf
from server_process import long_recording, start_server

LIMITS = ["--max_batch_size", "1", "--max_wait_s", "0.2"]


@pytest.fixture(scope="module")
def server(random_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from start_server(random_model_dir, log, *LIMITS)


@pytest.fixture(scope="module")
def wavs(speech_dir) -> list[str]:
    return sorted(str(p) for p in speech_dir.glob("*.wav"))


def _post(server, data: bytes, name: str = "a.wav", **fields) -> requests.Response:
    return requests.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": (name, data)},
        data=fields,
        timeout=600,
    )


def test_a_crowd_past_max_wait_gets_503_at_once(server, wavs, tmp_path):
    assert _post(server, open(wavs[0], "rb").read()).status_code == 200  # throughput measured
    data = long_recording(wavs, tmp_path / "long.wav", rate=11025).read_bytes()  # ~75 s

    def timed(_):
        start = time.monotonic()
        response = _post(server, data)
        return response, time.monotonic() - start

    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(timed, range(6)))
    busy = [(r, t) for r, t in answers if r.status_code == 503]
    done = [(r, t) for r, t in answers if r.status_code == 200]
    assert busy and done and len(busy) + len(done) == 6, [r.status_code for r, _ in answers]
    slowest_done = max(t for _, t in done)
    for response, seconds in busy:
        error = response.json()["error"]
        assert error["code"] == "server_busy" and "--max_wait_s" in error["message"], error
        assert int(response.headers["Retry-After"]) >= 1
        assert seconds < 1.5 and seconds < slowest_done, (seconds, slowest_done)
    assert len({r.json()["text"] for r, _ in done}) == 1  # the same recording, the same text
    assert requests.get(f"{server.url}/health", timeout=10).json()["queue_windows"] == 0


def test_noise_and_silence_give_empty_text(server, tmp_path):
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.wav"
    sf.write(noise, rng.normal(0, 0.3, 40 * 16000).clip(-1, 1), 16000)
    for response_format in ("json", "verbose_json"):
        r = _post(server, noise.read_bytes(), "noise.wav", response_format=response_format)
        assert r.status_code == 200 and r.json()["text"] == "", r.text[:300]
    assert all(s["text"] == "" for s in r.json()["segments"])


def test_long_silence_is_decoded_in_chunks(server, tmp_path):
    """20 minutes at 44.1 kHz stereo are 423 MB of float32 decoded whole (and 77 MB at
    16 kHz mono); the server's peak memory may grow by a small part of that."""
    hour = tmp_path / "silence.flac"
    with sf.SoundFile(hour, "w", 44100, 2, format="FLAC") as f:
        block = np.zeros((44100 * 60, 2), np.float32)
        for _ in range(20):
            f.write(block)
    process = psutil.Process(server.proc.pid)

    def peak() -> int:  # VmHWM: the resident high-water mark, in bytes
        status = open(f"/proc/{process.pid}/status").read()
        return int(status.split("VmHWM:")[1].split()[0]) * 1024

    before = peak()
    r = _post(server, hour.read_bytes(), "silence.flac", response_format="verbose_json")
    assert r.status_code == 200 and r.json()["text"] == "", r.text[:300]
    assert r.json()["duration"] == pytest.approx(1200, abs=0.1)
    grown = peak() - before
    assert grown < 60 * 2**20, f"peak memory grew by {grown / 2**20:.0f} MB"
