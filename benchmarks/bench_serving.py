#!/usr/bin/env python3
"""Load test of west-serve: what dynamic batching buys under concurrent requests.

    python benchmarks/bench_serving.py --models /tmp/wmodels     # whisper tiny.en + SmolLM2-135M
    python benchmarks/bench_serving.py --quick                   # tiny random models, few requests

Starts west-serve twice on the same model folder, with `--max_batch_size 16` (batched) and
`--max_batch_size 1` (one at a time), and sends each `--requests` transcription requests of
espeak-ng speech (2 to 8 s, WAV) from 1, 4 and 16 client threads. Both servers stay up and
take turns every 12 requests (16 at concurrency 16), so a change in the machine's load hits
both alike. Printed: requests/s, p50 and p95 latency (upload to reply) and the batching gain
(batched requests/s over one-at-a-time requests/s) per concurrency, with the CPU and the
load average.

Without `--checkpoint`, the model folder is the real encoder and LLM with a seeded random
projector: speed is what is measured, and its transcripts are garbage (how many words they
have is printed, since the time goes with it; `--max_new_tokens`, 24 by default, bounds them
to about a real transcript's length). `--models DIR` is
the folder examples/mini/local/prepare_models.py writes (also read from $WEST_OFFLINE_MODELS).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
from workload import build_tiny_models, default_workdir, real_models, synthesize_data

CONCURRENCY = (1, 4, 16)
BATCHED, SINGLE = 16, 1  # --max_batch_size of the two servers
TARGET_GAIN = 3.0  # the aim at concurrency 16: batched >= 3x one at a time
MIN_S, MAX_S = 2.0, 8.0  # speech durations sent
ROUND = 12  # requests per server before the other takes its turn (more at concurrency 16)
# A random projector's LLM chats on to the server's 200-token limit; a transcript of 2-8 s
# of speech is about 5-25 words, so each request is held to about a real one's work.
RANDOM_PROJECTOR_TOKENS = 24


# ---- a west-serve process -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`west-serve --model_dir DIR` on a free 127.0.0.1 port; its output goes to `log`,
    which is quoted if it fails to start."""

    def __init__(self, model_dir: str | Path, log: Path, *flags: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log)
        self.cmd = [
            sys.executable, "-m", "west.bin.serve", "--model_dir", str(model_dir),
            "--host", "127.0.0.1", "--port", str(self.port), "--device", "cpu", *flags,
        ]  # fmt: skip
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def launch(self) -> Server:
        """Start the process; `wait` for it to serve (two servers can load at once)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def wait(self, timeout: float = 600) -> Server:
        """Return once GET /health answers 200; raise with the log's end if it never does."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self._failure(f"exited with code {self.proc.returncode}"))
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as reply:
                    if reply.status == 200:
                        return self
            except OSError:
                pass  # not listening yet, or 503 while the model loads
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(self._failure(f"not healthy after {timeout:.0f} s"))

    def _failure(self, what: str) -> str:
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.is_file() else ""
        return f"{' '.join(self.cmd)}: {what}; its output ({self.log}) ends:\n{tail}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # uvicorn finishes its requests and exits on SIGTERM
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---- the client -----------------------------------------------------------------------------


def multipart(fields: dict[str, str], audio: bytes, filename: str) -> tuple[bytes, str]:
    """A multipart/form-data body with `fields` and `audio` as the `file` part; its type."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        f"Content-Type: audio/wav\r\n\r\n".encode()
        + audio
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


class Client:
    """One keep-alive connection to a server, as one user of a real client would hold."""

    def __init__(self, url: str, timeout: float = 600):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def post(self, audio: bytes, filename: str, **fields: str) -> tuple[int, bytes]:
        """POST /v1/audio/transcriptions -> (HTTP status, body)."""
        body, content_type = multipart(fields, audio, filename)
        for attempt in (1, 2):
            try:
                self.conn.request(
                    "POST", "/v1/audio/transcriptions", body, {"Content-Type": content_type}
                )
                reply = self.conn.getresponse()
                return reply.status, reply.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # the server closed an idle keep-alive connection: reconnect
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


# ---- load -----------------------------------------------------------------------------------


@dataclass
class Run:
    """One server at one concurrency."""

    latencies: list[float] = field(default_factory=list)  # seconds, one per successful request
    wall_s: float = 0.0
    words: int = 0  # in the transcripts: the work done goes with them
    errors: list[str] = field(default_factory=list)
    windows: float = 0.0  # decoded, and in how many batches (the server's /metrics)
    batches: float = 0.0

    @property
    def mean_batch(self) -> float:
        return self.windows / self.batches if self.batches else float("nan")

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.wall_s if self.wall_s else 0.0

    def percentile(self, p: int) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] if self.latencies else float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]


def drive(
    url: str,
    wavs: list[tuple[str, bytes]],
    concurrency: int,
    requests: int,
    run: Run | None = None,
    first: int = 0,
) -> Run:
    """Send `requests` requests (`wavs` in turn, from the `first`) from `concurrency`
    threads, each sending its next one as soon as its last is answered; add them to `run`."""
    run, lock = run or Run(), threading.Lock()
    todo = iter(range(first, first + requests))

    def user() -> None:
        client = Client(url)
        try:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                name, audio = wavs[i % len(wavs)]
                start = time.perf_counter()
                try:
                    status, body = client.post(audio, name, response_format="json")
                except OSError as e:
                    status, body = 0, repr(e).encode()
                latency = time.perf_counter() - start
                with lock:
                    if status == 200:
                        run.latencies.append(latency)
                        run.words += len(json.loads(body)["text"].split())
                    else:
                        run.errors.append(f"{name}: HTTP {status} {body[:300]!r}")
        finally:
            client.close()

    threads = [threading.Thread(target=user) for _ in range(concurrency)]
    windows, batches = batch_counts(url)
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.wall_s += time.perf_counter() - start
    after = batch_counts(url)
    run.windows, run.batches = run.windows + after[0] - windows, run.batches + after[1] - batches
    return run


def batch_counts(url: str) -> tuple[float, float]:
    """(windows decoded, batches) so far: west_batch_size's sum and count in /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as reply:
        text = reply.read().decode()
    found = dict(line.split() for line in text.splitlines() if line.startswith("west_batch_size_"))
    return float(found.get("west_batch_size_sum", 0)), float(found.get("west_batch_size_count", 0))


def measure(servers: dict[int, Server], wavs, concurrency: int, requests: int) -> dict[int, Run]:
    """`requests` per server, in rounds of max(concurrency, ROUND) requests with the servers
    taking turns (A B B A ...): a change in the machine's load (other work on a shared
    machine) then hits both alike, which one run after the other does not."""
    runs = {b: Run() for b in servers}
    order, size = list(servers), max(concurrency, ROUND)
    for first in range(0, requests, size):
        for b in order:
            drive(servers[b].url, wavs, concurrency, min(size, requests - first), runs[b], first)
        order.reverse()
    return runs


# ---- set-up ---------------------------------------------------------------------------------


def write_model_dir(whisper: str, llm: str, out: Path, projector_hidden_size: int | None) -> Path:
    """A checkpoint folder as west-train writes one: the given encoder and LLM, a seeded
    random projector."""
    import torch
    from safetensors.torch import save_file

    from west.config import ModelArguments
    from west.models.build import build_model

    if (out / "model.safetensors").is_file():
        return out
    config = ModelArguments(whisper_model_name_or_path=whisper, llm_model_name_or_path=llm)
    if projector_hidden_size is not None:
        config = dataclasses.replace(config, projector_hidden_size=projector_hidden_size)
    torch.manual_seed(0)
    model = build_model(config)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out)
    save_file(model.trainable_state_dict(), str(out / "model.safetensors"))
    return out


def speech(workdir: Path, count: int) -> list[tuple[str, bytes]]:
    """`count` espeak-ng recordings of MIN_S to MAX_S seconds, as (file name, WAV bytes)."""
    data = synthesize_data(workdir / "speech", 3 * count)
    wavs = []
    for line in data.read_text().splitlines():
        path = Path(json.loads(line)["wav"])
        if MIN_S <= sf.info(str(path)).duration <= MAX_S:
            wavs.append((path.name, path.read_bytes()))
    if not wavs:
        raise RuntimeError(f"{data}: no recording of {MIN_S:.0f} to {MAX_S:.0f} s")
    return wavs[:count]


def cpu_name() -> str:
    """The CPU's model name as lscpu prints it (and the cores this process may use)."""
    name = "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        out = ""
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            name = value.strip()
    return f"{name}, {len(os.sched_getaffinity(0))} cores usable"


# ---- report ---------------------------------------------------------------------------------


def format_table(runs: dict[tuple[int, int], Run]) -> str:
    """A Markdown table, one row per concurrency: each server's figures and the gain."""
    head = (
        "| concurrency | batched req/s | p50 s | p95 s | windows/batch | one-at-a-time req/s "
        "| p50 s | p95 s | batching gain |"
    )
    lines = [head, "|" + "---:|" * (head.count("|") - 1)]
    for c in sorted({c for c, _ in runs}):
        b, s = runs[c, BATCHED], runs[c, SINGLE]
        gain = b.rps / s.rps if s.rps else float("nan")
        lines.append(
            f"| {c} | {b.rps:.2f} | {b.percentile(50):.2f} | {b.percentile(95):.2f} "
            f"| {b.mean_batch:.1f} | {s.rps:.2f} | {s.percentile(50):.2f} | {s.percentile(95):.2f} | {gain:.2f}x |"
        )
    return "\n".join(lines)


def report(runs: dict[tuple[int, int], Run], about: list[str]) -> str:
    lines = [*about, "", format_table(runs)]
    top = CONCURRENCY[-1]
    if (top, BATCHED) in runs:
        gain = runs[top, BATCHED].rps / max(runs[top, SINGLE].rps, 1e-9)
        verdict = "met" if gain >= TARGET_GAIN else "NOT met"
        lines += [
            "",
            f"target: at concurrency {top}, batched >= {TARGET_GAIN:.0f}x the throughput of "
            f"one-at-a-time serving: {verdict} ({gain:.2f}x)",
        ]
    return "\n".join(lines)


# ---- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--models",
        default=os.environ.get("WEST_OFFLINE_MODELS"),
        type=Path,
        help="folder written by examples/mini/local/prepare_models.py",
    )
    p.add_argument("--whisper", help="openai-whisper .pt checkpoint or HF Whisper folder")
    p.add_argument("--llm", help="Hugging Face causal LM folder")
    p.add_argument("--checkpoint", type=Path, help="a trained WeST checkpoint folder to serve")
    p.add_argument("--quick", action="store_true", help="tiny random models, few requests")
    p.add_argument("--requests", type=int, help="per server and concurrency (default 48, quick 6)")
    p.add_argument(
        "--concurrency",
        type=lambda x: [int(c) for c in x.split(",")],
        default=list(CONCURRENCY),
        help="client threads, comma-separated (default 1,4,16; the gain's target is at 16)",
    )
    p.add_argument("--max_wait_ms", type=int, default=20, help="the servers' batching window")
    p.add_argument(
        "--max_new_tokens",
        type=int,
        help=f"passed to both servers (default: {RANDOM_PROJECTOR_TOKENS} with a random "
        "projector, 8 with --quick, the server's own with --checkpoint)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="each server's torch threads (OMP_NUM_THREADS); 0: torch's default",
    )
    p.add_argument("--workdir", type=Path, help="models, speech and server logs")
    return p.parse_args(argv)


def model_folder(args: argparse.Namespace, workdir: Path) -> tuple[Path, str]:
    """The folder to serve and a line saying what it is."""
    if args.checkpoint:
        return args.checkpoint, f"model: {args.checkpoint} (trained checkpoint)"
    if args.quick or not (args.models or (args.whisper and args.llm)):
        whisper, llm = build_tiny_models(workdir / "tiny_models")
        folder = write_model_dir(whisper, llm, workdir / "tiny_random_model", 32)
        return folder, "model: tiny random models (2-layer Whisper-shaped encoder, 2-layer Qwen2)"
    whisper, llm = (args.whisper, args.llm) if args.whisper else real_models(args.models)
    for path in (whisper, llm):
        if not Path(path).exists():
            raise SystemExit(
                f"{path}: not found; run python examples/mini/local/prepare_models.py "
                "--output_dir DIR"
            )
    name = f"{Path(whisper).stem}_{Path(llm).name}_random_projector"
    return write_model_dir(whisper, llm, workdir / name, None), (
        f"model: {Path(whisper).name} + {Path(llm).name} with a random projector "
        "(speed is what is measured; the transcripts are garbage)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    requests = args.requests or (6 if args.quick else 48)
    if args.quick:  # few tokens and one thread per server: a smoke run, not a measurement
        args.max_new_tokens = args.max_new_tokens or 8
        args.threads = args.threads or 1
    elif not args.checkpoint:
        args.max_new_tokens = args.max_new_tokens or RANDOM_PROJECTOR_TOKENS
    workdir = args.workdir or default_workdir() / "serving"
    folder, model_line = model_folder(args, workdir)
    wavs = speech(workdir, min(requests, 16))
    flags = ["--max_wait_ms", str(args.max_wait_ms)]
    if args.max_new_tokens:
        flags += ["--max_new_tokens", str(args.max_new_tokens)]
    env = {"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}
    servers = {
        b: Server(
            folder, workdir / f"server_batch{b}.log", "--max_batch_size", str(b), *flags, env=env
        )
        for b in (BATCHED, SINGLE)
    }
    load_start = os.getloadavg()[0]
    runs: dict[tuple[int, int], Run] = {}
    try:
        for server in servers.values():
            server.launch()
        for server in servers.values():
            server.wait()
            drive(server.url, wavs, 1, 2)  # warm-up: the first requests pay one-off costs
        for c in args.concurrency:
            for b, r in measure(servers, wavs, c, requests).items():
                runs[c, b] = r
                print(
                    f"batch {b:>2}, concurrency {c:>2}: {len(r.latencies)} ok, "
                    f"{len(r.errors)} failed in {r.wall_s:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
    seconds = [sf.info(io.BytesIO(a)).duration for _, a in wavs]
    answered = sum(len(r.latencies) for r in runs.values())
    words = sum(r.words for r in runs.values()) / max(answered, 1)
    about = [
        f"west-serve load test: --max_batch_size {BATCHED} (batched) vs {SINGLE} "
        f"(one at a time), {' '.join(flags)}, device cpu, "
        f"{args.threads or 'default'} torch thread(s) per server",
        model_line,
        f"requests: {requests} per server and concurrency, {len(wavs)} espeak-ng recordings "
        f"of {min(seconds):.1f}-{max(seconds):.1f} s (mean {statistics.mean(seconds):.1f} s), "
        f"{words:.1f} words per transcript on average",
        f"CPU: {cpu_name()}; load average {load_start:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end",
    ]
    print(report(runs, about), flush=True)
    errors = [e for r in runs.values() for e in r.errors]
    for e in errors[:5]:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
