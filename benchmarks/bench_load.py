#!/usr/bin/env python3
"""west-serve under load, before and after a change: mixed traffic, head-of-line blocking, memory.

    python benchmarks/bench_load.py --model_dir examples/mini/exp/ctc_compress \\
        --baseline_src /tmp/west_old --baseline_flags="" \\
        --flags="--max_wait_s 30 --max_audio_seconds 7200" --json load.json

"Before" is west-serve run from another source tree (`--baseline_src`, a checkout of an older
WeST, put first on PYTHONPATH; which `west` each server imports is checked and printed),
"after" is this tree; each gets its own extra flags. The two run one after the other on the
same machine and model folder, never at the same time. Without `--baseline_src` only this
tree's server runs. For each server:

1. Mixed load (a fresh server): `--concurrency` clients, each sending its next request as
   soon as its last is answered, `--requests` in all; short (2-5 s) recordings are the
   utterances of `--data`, long ones (20-30 s) several of them joined with 0.5 s pauses,
   `--long_share` of the requests. A 503 is counted, not retried. Reported: p50 / p95
   latency of the 200s, answered requests/s and audio seconds/s, 503s (count, share, p50 /
   max time until they came) and any other status.
2. Head-of-line (same server, idle again): a `--probe_s` request alone (its own decoding
   time), then the same request sent while a `--hol_minutes` recording is being decoded;
   the long request is then abandoned (its connection closed: the server cancels it) and
   the time until /health's queue is empty is measured.
3. Memory (a fresh server): the process's RSS and VmHWM (its peak, /proc/PID/status) after
   start-up, after `--memory_requests` short requests sent 16 at a time, and after one upload
   of `--silence_s` seconds of silence as FLAC (its answer is printed); the RSS sampled
   during that upload too.

The defaults take about 20-25 minutes in all, both servers, with that model on 2 idle cores
(the old server's share is the larger: it answers every request at 64 clients and makes the
4 s request wait for the whole long recording); every size is a flag, and the sizes used are
printed. All recordings are written once (16 kHz) to `--workdir` (a temporary folder by default).
Printed: one table per scenario with the two servers side by side, the command line, the
CPU; `--json` writes every number.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf
from bench_serving import Client, Run, Server, cpu_name, multipart
from rss_monitor import RssMonitor

from west.data.audio import SAMPLE_RATE, load_audio
from west.data.dataset import read_data

ROOT = Path(__file__).resolve().parents[1]
PAUSE_S = 0.5  # between the utterances joined into a long recording
MEMORY_CONCURRENCY = 16
MiB = 2**20


# ---- the recordings -------------------------------------------------------------------------


@dataclass
class Recording:
    name: str
    kind: str  # "short" or "long"
    seconds: float
    data: bytes  # the file as uploaded


def _write(path: Path, audio: np.ndarray) -> Path:
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
    return path


def _joined(utts: list[np.ndarray], start: int, seconds: float) -> tuple[np.ndarray, int]:
    """Utterances from `start` on (cycling), joined with PAUSE_S silences until `seconds`
    long; the recording and the index of the next utterance."""
    gap = np.zeros(int(PAUSE_S * SAMPLE_RATE), np.float32)
    pieces, total, i = [], 0, start
    while total < seconds * SAMPLE_RATE:
        x = utts[i % len(utts)]
        pieces += [x, gap]
        total += len(x) + len(gap)
        i += 1
    return np.concatenate(pieces)[: int(seconds * SAMPLE_RATE)], i


class Workload:
    """Every recording sent, built once from the utterances of `data` into `folder`."""

    def __init__(self, args: argparse.Namespace, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        utts = read_data(str(args.data))
        if not utts:
            raise SystemExit(f"{args.data}: no utterances")
        audio = [load_audio(u.wav) for u in utts]
        lo, hi = args.short_s
        self.short = [
            Recording(u.key, "short", len(x) / SAMPLE_RATE, _write(folder / f"{u.key}.wav", x).read_bytes())
            for u, x in zip(utts, audio)
            if lo <= len(x) / SAMPLE_RATE <= hi
        ]  # fmt: skip
        if not self.short:
            raise SystemExit(f"{args.data}: no utterance of {lo:g} to {hi:g} s (--short_s)")
        rng, i = random.Random(0), 0
        self.long = []
        for n in range(args.long_files):
            x, i = _joined(audio, i, rng.uniform(*args.long_s))
            path = _write(folder / f"long{n}.wav", x)
            self.long.append(Recording(path.stem, "long", len(x) / SAMPLE_RATE, path.read_bytes()))
        self.probe = min(self.short, key=lambda r: abs(r.seconds - args.probe_s))
        x, _ = _joined(audio, 0, 60 * args.hol_minutes)
        path = folder / "hol_long.flac"
        sf.write(path, x, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
        self.hol = Recording(path.name, "long", len(x) / SAMPLE_RATE, path.read_bytes())
        self.silence = silence_flac(folder / "silence.flac", args.silence_s)
        self.source = f"{args.data} ({len(utts)} utterances)"

    def plan(self, requests: int, long_share: float, seed: int) -> list[Recording]:
        """The requests of one mixed run, the same for every server."""
        rng = random.Random(seed)
        return [
            rng.choice(self.long if rng.random() < long_share else self.short)
            for _ in range(requests)
        ]

    def describe(self) -> dict:
        short, long = [r.seconds for r in self.short], [r.seconds for r in self.long]
        return {
            "data": self.source,
            "short_files": len(short),
            "short_s": [round(min(short), 2), round(max(short), 2)],
            "long_files": len(long),
            "long_s": [round(min(long), 2), round(max(long), 2)] if long else [],
            "probe": {"name": self.probe.name, "seconds": round(self.probe.seconds, 2)},
            "hol_long_s": round(self.hol.seconds, 1),
            "hol_long_mb": round(len(self.hol.data) / MiB, 1),
            "silence_s": round(self.silence.seconds, 1),
            "silence_mb": round(len(self.silence.data) / MiB, 2),
        }


def silence_flac(path: Path, seconds: float) -> Recording:
    """`seconds` of digital silence as a 16 kHz FLAC, written a minute at a time."""
    block = np.zeros(60 * SAMPLE_RATE, np.int16)
    left = int(seconds * SAMPLE_RATE)
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, "PCM_16", format="FLAC") as f:
        while left > 0:
            f.write(block[: min(left, len(block))])
            left -= len(block)
    return Recording(path.name, "silence", seconds, path.read_bytes())


# ---- one server -----------------------------------------------------------------------------


def server_env(src: Path | None, threads: int) -> dict[str, str]:
    """The server's environment: `src` first on PYTHONPATH, and never the working directory
    (`python -m` puts it first on sys.path, where a checkout of WeST would shadow `src`)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "PYTHONPATH")}
    env["PYTHONSAFEPATH"] = "1"
    if src is not None:
        env["PYTHONPATH"] = str(src)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def imported_west(env: dict[str, str], expected: Path) -> str:
    """The `west/__init__.py` a server started with `env` imports; exit unless it is the one
    in `expected`."""
    out = subprocess.run(
        [sys.executable, "-c", "import west; print(west.__file__)"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    found = out.stdout.strip()
    if out.returncode or Path(found).resolve() != (expected / "west" / "__init__.py").resolve():
        raise SystemExit(
            f"a server started from {expected} would import west from {found or '?'} "
            f"{out.stderr.strip()[-500:]}; expected {expected}/west/__init__.py"
        )
    return found


def revision(src: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(src), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return out.stdout.strip() or "not a git checkout"


def start(args, side: str, env: dict, flags: list[str], what: str) -> tuple[Server, float]:
    server = Server(args.model_dir, args.workdir / f"{side}_{what}.log", *flags)
    server.env = env
    began = time.perf_counter()
    server.launch().wait(timeout=args.start_timeout_s)
    return server, time.perf_counter() - began


def memory(pid: int) -> dict[str, float]:
    """The process's resident memory now and its high-water mark (VmHWM), in MiB."""
    rss = psutil.Process(pid).memory_info().rss
    hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return {"rss_mib": round(rss / MiB, 1), "hwm_mib": round(hwm / MiB, 1)}


class ProcessRss(RssMonitor):
    """RssMonitor's sampling thread and peaks per label, of another process."""

    def __init__(self, pid: int, interval: float = 0.02):
        super().__init__(interval)
        self.process = psutil.Process(pid)

    def sample(self) -> None:
        if self.label is not None:
            try:
                rss = self.process.memory_info().rss
            except psutil.Error:
                return
            self.peaks[self.label] = max(self.peaks[self.label], rss)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return json.loads(reply.read())


def gauges(url: str) -> dict[str, float]:
    """The unlabelled samples of /metrics (west_queue_windows, west_requests_in_flight, ...)."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as reply:
        text = reply.read().decode()
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#") and "{" not in parts[0]:
            found[parts[0]] = float(parts[1])
    return found


def wait_idle(url: str, timeout: float) -> float | None:
    """Seconds until /health's queue is empty and no request is in flight; None if it did
    not empty within `timeout`."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        try:
            queued = get_json(url + "/health").get("queue_windows", 0)
            busy = gauges(url).get("west_requests_in_flight", 0)
        except (OSError, ValueError):
            queued = busy = 1
        if not queued and not busy:
            return time.perf_counter() - began
        time.sleep(0.1)
    return None


# ---- requests -------------------------------------------------------------------------------


@dataclass
class Answer:
    kind: str
    audio_s: float
    status: int  # 0: no HTTP answer (the connection failed)
    seconds: float  # from sending to the answer
    body: str = ""


def send(client: Client, rec: Recording) -> Answer:
    began = time.perf_counter()
    try:
        status, body = client.post(rec.data, rec.name, response_format="json")
    except OSError as e:
        status, body = 0, repr(e).encode()
    elapsed = time.perf_counter() - began
    return Answer(rec.kind, rec.seconds, status, elapsed, body[:300].decode(errors="replace"))


def drive(url: str, plan: list[Recording], concurrency: int, timeout: float):
    """`plan`'s requests from `concurrency` clients, each sending its next as soon as its
    last is answered: (answers, wall seconds)."""
    todo, answers, lock = iter(plan), [], threading.Lock()

    def user() -> None:
        client = Client(url, timeout=timeout)
        try:
            while True:
                with lock:
                    rec = next(todo, None)
                if rec is None:
                    return
                answer = send(client, rec)
                with lock:
                    answers.append(answer)
        finally:
            client.close()

    threads = [threading.Thread(target=user) for _ in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, time.perf_counter() - began


def percentile(values: list[float], p: int) -> float | None:
    return round(Run(latencies=values).percentile(p), 3) if values else None


def summarize(answers: list[Answer], wall: float) -> dict:
    ok = [a for a in answers if a.status == 200]
    busy = [a.seconds for a in answers if a.status == 503]
    other: dict[str, int] = {}
    for a in answers:
        if a.status not in (200, 503):
            other[str(a.status)] = other.get(str(a.status), 0) + 1
    return {
        "requests": len(answers),
        "ok": len(ok),
        "p50_s": percentile([a.seconds for a in ok], 50),
        "p95_s": percentile([a.seconds for a in ok], 95),
        "short_p50_s": percentile([a.seconds for a in ok if a.kind == "short"], 50),
        "long_p50_s": percentile([a.seconds for a in ok if a.kind == "long"], 50),
        "rps": round(len(ok) / wall, 3),
        "audio_s_per_s": round(sum(a.audio_s for a in ok) / wall, 2),
        "n503": len(busy),
        "share503": round(len(busy) / len(answers), 3) if answers else 0.0,
        "p50_503_s": percentile(busy, 50),
        "max_503_s": round(max(busy), 3) if busy else None,
        "other_statuses": other,
        "first_errors": sorted({f"{a.status}: {a.body}" for a in answers if a.status != 200})[:3],
        "wall_s": round(wall, 1),
    }


class Held:
    """One request on a connection of its own, in a thread, that can be abandoned: its
    socket closed while the server works on it (the server then cancels it)."""

    def __init__(self, url: str, rec: Recording, timeout: float):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        self.rec, self.answer, self.error = rec, None, ""
        self.sent = time.perf_counter()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        body, content_type = multipart({"response_format": "json"}, self.rec.data, self.rec.name)
        try:
            self.conn.request(
                "POST", "/v1/audio/transcriptions", body, {"Content-Type": content_type}
            )
            reply = self.conn.getresponse()
            text = reply.read()
            self.answer = Answer(
                self.rec.kind, self.rec.seconds, reply.status,
                time.perf_counter() - self.sent, text[:300].decode(errors="replace"),
            )  # fmt: skip
        except OSError as e:  # abandoned, or the connection failed
            self.error = repr(e)

    def wait(self, timeout: float | None = None) -> Answer | None:
        self.thread.join(timeout)
        return self.answer

    def abandon(self) -> None:
        if self.thread.is_alive() and self.conn.sock is not None:
            try:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conn.close()
        self.thread.join(30)


# ---- the scenarios --------------------------------------------------------------------------


def mixed_load(args, url: str, work: Workload) -> dict:
    results = {}
    for c, n in zip(args.concurrency, args.requests):
        plan = work.plan(n, args.long_share, seed=c)
        answers, wall = drive(url, plan, c, args.request_timeout_s)
        results[str(c)] = summarize(answers, wall)
        results[str(c)]["drain_s"] = _round(wait_idle(url, args.drain_timeout_s))
        r = results[str(c)]
        log(
            f"  {c} clients: {r['ok']}/{r['requests']} answered 200, {r['n503']} 503, "
            f"in {r['wall_s']} s"
        )
    return results


def head_of_line(args, url: str, work: Workload) -> dict:
    client = Client(url, timeout=args.request_timeout_s)
    alone = [send(client, work.probe) for _ in range(args.probe_repeats)]
    before = gauges(url).get("west_windows_decoded_total", 0)
    held = Held(url, work.hol, args.request_timeout_s)
    queued, deadline = False, time.perf_counter() + args.start_wait_timeout_s
    while time.perf_counter() < deadline and held.thread.is_alive():
        g = gauges(url)
        queued = queued or g.get("west_queue_windows", 0) > 0
        queued = queued or g.get("west_windows_decoded_total", 0) > before
        if queued and time.perf_counter() - held.sent >= args.hol_wait_s:
            break
        time.sleep(0.1)
    sent_after = time.perf_counter() - held.sent
    probe = send(client, work.probe)
    client.close()
    long_done = not held.thread.is_alive()
    abandoned = time.perf_counter()
    held.abandon()
    drain = _round(wait_idle(url, args.drain_timeout_s))
    long = held.answer
    result = {
        "probe_s": round(work.probe.seconds, 2),
        "alone_s": [round(a.seconds, 3) for a in alone],
        "alone_p50_s": percentile([a.seconds for a in alone if a.status == 200], 50),
        "alone_statuses": [a.status for a in alone],
        "long_s": round(work.hol.seconds, 1),
        "probe_sent_after_s": round(sent_after, 2),
        "long_was_queued": queued,
        "under_load_s": round(probe.seconds, 3),
        "under_load_status": probe.status,
        "long_answered_first": long_done,
        "long_status": long.status if long else None,
        "long_seconds": round(long.seconds, 2) if long else None,
        "abandoned_after_s": round(abandoned - held.sent, 2),
        "queue_empty_after_abandon_s": drain,
    }
    ok_alone = result["alone_p50_s"]
    result["slowdown"] = (
        round(probe.seconds / ok_alone, 2) if ok_alone and probe.status == 200 else None
    )
    log(
        f"  4 s request alone {ok_alone} s, behind {work.hol.seconds / 60:.0f} min: "
        f"{probe.seconds:.2f} s (HTTP {probe.status}); queue empty {drain} s after abandoning"
    )
    return result


def memory_series(args, server: Server, work: Workload) -> dict:
    """RSS and VmHWM after start-up, along the short requests (after each quarter) and
    after the silent upload, whose answer is kept."""
    pid, url = server.proc.pid, server.url
    result = {"startup": memory(pid), "along_requests": []}
    plan = [work.short[i % len(work.short)] for i in range(args.memory_requests)]
    answers, wall = [], 0.0
    for q in range(4):  # in quarters, to see whether memory keeps growing
        part = plan[q * len(plan) // 4 : (q + 1) * len(plan) // 4]
        got, seconds = drive(url, part, MEMORY_CONCURRENCY, args.request_timeout_s)
        answers, wall = answers + got, wall + seconds
        result["along_requests"].append({"requests": len(answers), **memory(pid)})
    result["requests"] = summarize(answers, wall)
    result["after_requests"] = memory(pid)
    with ProcessRss(pid) as monitor, monitor.track("silence"):
        held = Held(url, work.silence, args.silence_timeout_s)
        answer = held.wait(args.silence_timeout_s + 5)
        if answer is None:
            held.abandon()
    abandoned = f"no answer in {args.silence_timeout_s:g} s (abandoned) {held.error}"
    result["silence"] = {
        "seconds_of_audio": work.silence.seconds,
        "upload_mib": round(len(work.silence.data) / MiB, 2),
        "status": answer.status if answer else None,
        "answer": answer.body if answer else abandoned,
        "seconds": round(answer.seconds, 2) if answer else None,
        "sampled_peak_rss_mib": monitor.peak_mb("silence"),
        "queue_empty_after_s": _round(wait_idle(url, args.drain_timeout_s)),
    }
    result["after_silence"] = memory(pid)
    log(
        f"  RSS {result['startup']['rss_mib']} -> {result['after_requests']['rss_mib']} -> "
        f"{result['after_silence']['rss_mib']} MiB; {work.silence.seconds / 60:g} min of "
        f"silence: HTTP {result['silence']['status']}"
    )
    return result


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def run_side(args, side: str, src: Path, flags: list[str], work: Workload) -> dict:
    env = server_env(src if src != ROOT else None, args.threads)
    found = imported_west(env, src)
    out = {
        "src": str(src),
        "revision": revision(src),
        "west_imported": found,
        "flags": flags,
    }
    log(f"{side}: west from {found}")
    server, out["startup_s"] = start(args, side, env, flags, "load")
    pythonpath = [f"PYTHONPATH={env['PYTHONPATH']}"] if "PYTHONPATH" in env else []
    out["server_command"] = shlex.join([*pythonpath, *server.cmd])
    try:
        out["load_server_startup"] = memory(server.proc.pid)
        warm = Client(server.url, timeout=args.request_timeout_s)
        out["warmup_statuses"] = [send(warm, work.probe).status for _ in range(2)]
        warm.close()
        out["mixed"] = mixed_load(args, server.url, work)
        out["head_of_line"] = head_of_line(args, server.url, work)
        out["load_server_end"] = memory(server.proc.pid)
    finally:
        server.stop()
    server, _ = start(args, side, env, flags, "memory")
    try:
        out["memory"] = memory_series(args, server, work)
    finally:
        server.stop()
    return out


# ---- report ---------------------------------------------------------------------------------


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "none"
    return str(value)


def table(columns: dict[str, dict], rows: list[tuple[str, str]]) -> str:
    """A Markdown table: one row per (label, key), one column per result dict."""
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for label, key in rows:
        lines.append(
            f"| {label} | " + " | ".join(_cell(c.get(key)) for c in columns.values()) + " |"
        )
    return "\n".join(lines)


MIXED_ROWS = [
    ("requests", "requests"),
    ("answered 200", "ok"),
    ("p50 latency of 200s, s", "p50_s"),
    ("p95 latency of 200s, s", "p95_s"),
    ("p50 short / long, s", "kinds"),
    ("requests/s (200s)", "rps"),
    ("audio s/s (200s)", "audio_s_per_s"),
    ("503s", "n503"),
    ("503 share", "share503"),
    ("time to 503, p50 / max s", "times503"),
    ("other statuses", "other_statuses"),
    ("wall s", "wall_s"),
]
HOL_ROWS = [
    ("4 s request alone, s (p50)", "alone_p50_s"),
    ("long recording, s", "long_s"),
    ("sent after the long one's start, s", "probe_sent_after_s"),
    ("4 s request behind it, s", "under_load_s"),
    ("its status", "under_load_status"),
    ("slowdown (behind / alone)", "slowdown"),
    ("long answered before the probe", "long_answered_first"),
    ("queue empty after abandoning, s", "queue_empty_after_abandon_s"),
]
MEMORY_ROWS = [
    ("RSS after start-up, MiB", "startup_rss"),
    ("VmHWM after start-up, MiB", "startup_hwm"),
    ("RSS after the short requests, MiB", "requests_rss"),
    ("VmHWM after the short requests, MiB", "requests_hwm"),
    ("RSS along them (each quarter), MiB", "along"),
    ("short requests: statuses", "requests_statuses"),
    ("RSS sampled during the silent upload, peak MiB", "silence_peak"),
    ("RSS after the silent upload, MiB", "silence_rss"),
    ("VmHWM after the silent upload, MiB", "silence_hwm"),
    ("silent upload: status", "silence_status"),
    ("silent upload: seconds to answer", "silence_seconds"),
]


def report(args, results: dict[str, dict], about: list[str]) -> str:
    parts = [*about]
    columns = {}
    for c in map(str, args.concurrency):
        for side, r in results.items():
            m = dict(r["mixed"][c])
            m["kinds"] = f"{_cell(m['short_p50_s'])} / {_cell(m['long_p50_s'])}"
            m["times503"] = f"{_cell(m['p50_503_s'])} / {_cell(m['max_503_s'])}"
            columns[f"{c} clients, {side}"] = m
    parts += ["", "1. Mixed load", "", table(columns, MIXED_ROWS)]
    hol = {side: r["head_of_line"] for side, r in results.items()}
    parts += [
        "",
        "2. Head-of-line: a 4 s request behind a long recording",
        "",
        table(hol, HOL_ROWS),
    ]
    mem = {}
    for side, r in results.items():
        m = r["memory"]
        codes: dict[str, int] = {}
        for k, v in (("200", m["requests"]["ok"]), ("503", m["requests"]["n503"])):
            if v:
                codes[k] = v
        mem[side] = {
            "startup_rss": m["startup"]["rss_mib"],
            "startup_hwm": m["startup"]["hwm_mib"],
            "requests_rss": m["after_requests"]["rss_mib"],
            "requests_hwm": m["after_requests"]["hwm_mib"],
            "along": " / ".join(str(a["rss_mib"]) for a in m["along_requests"]),
            "requests_statuses": {**codes, **m["requests"]["other_statuses"]},
            "silence_peak": m["silence"]["sampled_peak_rss_mib"],
            "silence_rss": m["after_silence"]["rss_mib"],
            "silence_hwm": m["after_silence"]["hwm_mib"],
            "silence_status": m["silence"]["status"],
            "silence_seconds": m["silence"]["seconds"],
        }
    silence = next(iter(results.values()))["memory"]["silence"]["seconds_of_audio"]
    parts += [
        "",
        f"3. Memory (a fresh server): {args.memory_requests} short requests, then "
        f"{silence / 60:g} min of silence as FLAC",
        "",
        table(mem, MEMORY_ROWS),
        "",
    ]
    for side, r in results.items():
        parts.append(f"{side}: the silent upload was answered: {r['memory']['silence']['answer']}")
    for side, r in results.items():
        for c, m in r["mixed"].items():
            for e in m["first_errors"]:
                parts.append(f"{side}, {c} clients, e.g. {e}")
    return "\n".join(parts)


def cpu() -> dict:
    """lscpu's model name and whether the CPU has AVX-512 (/proc/cpuinfo flags)."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        pass
    return {"name": cpu_name(), "avx512": "avx512f" in flags.split()}


# ---- main -----------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model_dir", required=True, type=Path, help="checkpoint folder to serve")
    p.add_argument("--baseline_src", type=Path, help="an older WeST checkout: the 'before' server")
    p.add_argument(
        "--baseline_flags",
        default="",
        help='extra flags of the old server (--baseline_flags="...")',
    )
    p.add_argument("--flags", default="", help='extra flags of this tree\'s server (--flags="...")')
    p.add_argument("--data", type=Path, default=ROOT / "examples/mini/data/test",
                   help="utterances (a jsonl file or Kaldi data dir) the recordings are made of")  # fmt: skip
    p.add_argument("--concurrency", type=_ints, default=[8, 64], help="clients, comma-separated")
    p.add_argument("--requests", type=_ints, default=[32, 128], help="per concurrency")
    p.add_argument("--long_share", type=float, default=0.15, help="of the mixed requests")
    p.add_argument("--short_s", type=_floats, default=[2.0, 5.0], help="MIN,MAX seconds")
    p.add_argument("--long_s", type=_floats, default=[20.0, 30.0], help="MIN,MAX seconds")
    p.add_argument("--long_files", type=int, default=8, help="long recordings made")
    p.add_argument("--probe_s", type=float, default=4.0, help="the head-of-line request's length")
    p.add_argument("--probe_repeats", type=int, default=3, help="times it is sent alone")
    p.add_argument("--hol_minutes", type=float, default=25.0, help="the long recording's length")
    p.add_argument(
        "--hol_wait_s", type=float, default=3.0,
        help="the probe is sent this long after the long one, once /metrics shows it queued",
    )  # fmt: skip
    p.add_argument("--memory_requests", type=int, default=200, help="short ones, 16 at a time")
    p.add_argument("--silence_s", type=float, default=3600.0, help="the silent upload's length")
    p.add_argument("--silence_timeout_s", type=float, default=600.0)
    p.add_argument("--request_timeout_s", type=float, default=1800.0)
    p.add_argument("--drain_timeout_s", type=float, default=900.0)
    p.add_argument("--start_timeout_s", type=float, default=600.0)
    p.add_argument("--start_wait_timeout_s", type=float, default=120.0,
                   help="longest wait for the long recording to be queued")  # fmt: skip
    p.add_argument("--threads", type=int, default=0,
                   help="each server's OMP_NUM_THREADS; 0: torch's default")  # fmt: skip
    p.add_argument("--workdir", type=Path, help="recordings and server logs (default: a temp dir)")
    p.add_argument("--json", type=Path, help="write every number here")
    args = p.parse_args(argv)
    if len(args.requests) != len(args.concurrency):
        p.error("--requests needs one count per --concurrency")
    if "--api_key" in args.flags + args.baseline_flags:
        p.error("--api_key: the clients here send no key (and /metrics would refuse them)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/bench_load.py", *argv])
    temporary = args.workdir is None
    args.workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_load_"))
    log(f"recordings and logs in {args.workdir}")
    work = Workload(args, args.workdir / "audio")
    sides = [("after", ROOT, shlex.split(args.flags))]
    if args.baseline_src:
        sides.insert(0, ("before", args.baseline_src.resolve(), shlex.split(args.baseline_flags)))
    load_start = os.getloadavg()[0]
    began = time.perf_counter()
    results = {side: run_side(args, side, src, flags, work) for side, src, flags in sides}
    processor = cpu()
    settings = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("json", "workdir")
    }
    about = [
        f"command: {command}",
        f"CPU: {processor['name']}, AVX-512: {'yes' if processor['avx512'] else 'no'}; "
        f"load average {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
        f"{time.perf_counter() - began:.0f} s in all",
        f"model: {args.model_dir}",
        f"recordings: {json.dumps(work.describe())}",
        f"mixed load: {', '.join(f'{n} requests from {c} clients' for c, n in zip(args.concurrency, args.requests))}, "
        f"{args.long_share:.0%} long; memory: {args.memory_requests} short requests, "
        f"{MEMORY_CONCURRENCY} at a time",
    ]  # fmt: skip
    for side, r in results.items():
        about.append(
            f"{side}: {r['server_command']}  (west: {r['west_imported']}, {r['revision']})"
        )
    print(report(args, results, about), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "cpu": processor,
                    "settings": settings,
                    "recordings": work.describe(),
                    "wall_s": round(time.perf_counter() - began, 1),
                    "sides": results,
                },
                indent=1,
            )
            + "\n"
        )
    if temporary:
        shutil.rmtree(args.workdir / "audio", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
