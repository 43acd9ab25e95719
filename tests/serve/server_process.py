"""A real west-serve process on 127.0.0.1 (a free port), and recordings to send it.

Each test module starts one server (`start_server` in a module fixture): the model load
takes seconds, the requests milliseconds. A module of its own, not a conftest.py: pytest
imports every conftest.py as `conftest`, and a second one would hide tests/conftest.py
from the modules that import from it (`from conftest import synthesize`).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import soundfile as sf

# Few tokens per window: the tiny random model's texts are garbage either way.
MAX_NEW_TOKENS = "6"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m west.bin.serve` with `flags`, its log in `log`."""

    def __init__(self, model_dir: Path, log: Path, *flags: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
        cmd = [sys.executable, "-m", "west.bin.serve", "--model_dir", str(model_dir)]
        cmd += ["--port", str(self.port), "--device", "cpu", *flags]
        with open(log, "w") as out:
            self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 180) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"west-serve exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"west-serve not ready in {timeout} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def metric(self, name: str) -> float:
        """One sample of /metrics, e.g. `west_errors_total{kind="empty_file"}` (0 if absent)."""
        text = requests.get(f"{self.url}/metrics", timeout=10).text
        match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def start_server(model_dir: Path, log: Path, *flags: str):
    """A generator for a module fixture: the ready server, stopped afterwards."""
    server = Server(model_dir, log, "--max_new_tokens", MAX_NEW_TOKENS, *flags).wait_ready()
    yield server
    server.stop()


def long_recording(wavs: list[str], path: Path, repeats: int = 4, rate: int | None = None) -> Path:
    """`wavs` one after another with 0.6 s silences, `repeats` times over (about 75 s for
    the six test sentences): long enough to be cut into several windows. `rate`: resample
    (by dropping samples) to keep the upload small."""
    pieces = []
    for _ in range(repeats):
        for w in wavs:
            x, sr = sf.read(w, dtype="float32")
            pieces += [x, np.zeros(int(0.6 * sr), np.float32)]
    audio = np.concatenate(pieces)
    if rate is not None and rate < sr:
        audio, sr = audio[:: round(sr / rate)], sr // round(sr / rate)
    sf.write(path, audio, sr)
    return path
