"""The server's counters, written in Prometheus' text format (`GET /metrics`).

A dozen numbers do not need the prometheus_client package: counters, two gauges and two
histograms under one lock, rendered by hand (text format 0.0.4).
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

# Windows per decoded batch: powers of two up to well past any --max_batch_size.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
# Seconds from a request's upload to its answer.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Histogram:
    """Cumulative buckets, sum and count, as Prometheus histograms are exposed."""

    def __init__(self, buckets: tuple[float, ...]):
        self.buckets = buckets
        self.counts = [0] * len(buckets)  # per bucket, not cumulative; +Inf is `count`
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.buckets):
            self.counts[i] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        out, total = [], 0
        for bound, n in zip(self.buckets, self.counts):
            total += n
            out.append(f'{name}_bucket{{le="{bound:g}"}} {total}')
        out += [
            f'{name}_bucket{{le="+Inf"}} {self.count}',
            f"{name}_sum {self.sum:.6g}",
            f"{name}_count {self.count}",
        ]
        return out


class Metrics:
    """What west-serve counts; every method may be called from any thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: Counter[int] = Counter()  # transcription requests answered, by status
        self.errors: Counter[str] = Counter()  # by kind (the OpenAI error `code`)
        self.in_flight = 0  # requests admitted and not yet answered
        self.queue_windows = 0  # windows waiting for the decoding worker
        self.windows = 0  # windows decoded
        self.audio_seconds = 0.0  # of audio transcribed
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)

    def request_started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def request_done(self, status: int, seconds: float, error: str | None = None) -> None:
        with self._lock:
            self.in_flight -= 1
            self.requests[status] += 1
            if error:
                self.errors[error] += 1
            if status == 200:
                self.latency.observe(seconds)

    def rejected(self, status: int, error: str) -> None:
        """A request answered before it was admitted (queue full, too large, ...)."""
        with self._lock:
            self.requests[status] += 1
            self.errors[error] += 1

    def queued(self, windows: int) -> None:
        with self._lock:
            self.queue_windows += windows

    def batch_decoded(self, size: int, dropped: int = 0) -> None:
        """A batch of `size` windows left the queue, plus `dropped` ones of gone clients."""
        with self._lock:
            self.queue_windows -= size + dropped
            if size:
                self.windows += size
                self.batch_sizes.observe(size)

    def transcribed(self, seconds: float) -> None:
        with self._lock:
            self.audio_seconds += seconds

    def render(self) -> str:
        """The Prometheus text exposition of every metric."""
        with self._lock:
            out = [
                "# HELP west_requests_total Transcription requests answered, by HTTP status.",
                "# TYPE west_requests_total counter",
                *(
                    f'west_requests_total{{status="{s}"}} {n}'
                    for s, n in sorted(self.requests.items())
                ),
                "# HELP west_errors_total Requests that failed, by kind (the error code).",
                "# TYPE west_errors_total counter",
                *(f'west_errors_total{{kind="{k}"}} {n}' for k, n in sorted(self.errors.items())),
                "# HELP west_requests_in_flight Requests admitted and not yet answered.",
                "# TYPE west_requests_in_flight gauge",
                f"west_requests_in_flight {self.in_flight}",
                "# HELP west_queue_windows Windows of audio waiting for the decoding worker.",
                "# TYPE west_queue_windows gauge",
                f"west_queue_windows {self.queue_windows}",
                "# HELP west_windows_decoded_total Windows of audio decoded.",
                "# TYPE west_windows_decoded_total counter",
                f"west_windows_decoded_total {self.windows}",
                "# HELP west_audio_seconds_total Seconds of audio transcribed.",
                "# TYPE west_audio_seconds_total counter",
                f"west_audio_seconds_total {self.audio_seconds:.6g}",
                "# HELP west_batch_size Windows decoded together, per batch.",
                "# TYPE west_batch_size histogram",
                *self.batch_sizes.lines("west_batch_size"),
                "# HELP west_request_seconds Time from upload to answer of successful requests.",
                "# TYPE west_request_seconds histogram",
                *self.latency.lines("west_request_seconds"),
            ]
        return "\n".join(out) + "\n"
