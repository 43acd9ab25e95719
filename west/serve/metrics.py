"""The server's counters, written in Prometheus' text format (`GET /metrics`).

A dozen numbers do not need the prometheus_client package: counters, three gauges and two
histograms under one lock, rendered by hand (text format 0.0.4). The realtime (WebSocket)
streams add the streams open and opened, the events sent to them by type, their errors by
code, and the partial texts decoded or dropped as stale.
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
        self.queue_seconds = 0.0  # their audio
        self.dropped = 0  # queued windows dropped (their clients went away)
        self.throughput = 0.0  # audio seconds decoded per second, as last measured
        self.windows = 0  # windows decoded
        self.audio_seconds = 0.0  # of audio transcribed
        self.batch_sizes = Histogram(BATCH_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.streams_open = 0  # realtime WebSocket streams connected now
        self.streams = 0  # realtime streams accepted since the start
        self.stream_events: Counter[str] = Counter()  # server events sent to streams, by type
        self.stream_errors: Counter[str] = Counter()  # error events sent, by code
        self.partials: Counter[str] = Counter()  # partial texts: decoded, dropped (stale)

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

    def queued(self, windows: int, seconds: float = 0.0) -> None:
        """`windows` holding `seconds` of audio joined the queue."""
        with self._lock:
            self.queue_windows += windows
            self.queue_seconds += seconds

    def dequeued(self, size: int, dropped: int = 0, seconds: float = 0.0) -> None:
        """A batch of `size` windows left the queue, or `dropped` ones of gone clients;
        `seconds`: the audio of all of them."""
        with self._lock:
            self.queue_windows -= size + dropped
            self.queue_seconds = max(0.0, self.queue_seconds - seconds)
            self.dropped += dropped
            if size:
                self.windows += size
                self.batch_sizes.observe(size)

    def transcribed(self, seconds: float) -> None:
        with self._lock:
            self.audio_seconds += seconds

    def stream_opened(self) -> None:
        with self._lock:
            self.streams_open += 1
            self.streams += 1

    def stream_closed(self) -> None:
        with self._lock:
            self.streams_open -= 1

    def stream_event(self, kind: str, error_code: str | None = None) -> None:
        """A server event of type `kind` sent to a stream (an `error` with its code)."""
        with self._lock:
            self.stream_events[kind] += 1
            if error_code:
                self.stream_errors[error_code] += 1

    def partials_decoded(self, decoded: int, dropped: int = 0) -> None:
        """`decoded` partial texts decoded as a batch; `dropped` ones cancelled as stale."""
        with self._lock:
            self.partials["decoded"] += decoded
            self.partials["dropped"] += dropped

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
                "# HELP west_queue_seconds Seconds of audio waiting for the decoding worker.",
                "# TYPE west_queue_seconds gauge",
                f"west_queue_seconds {self.queue_seconds:.6g}",
                "# HELP west_windows_dropped_total Queued windows dropped: their clients left.",
                "# TYPE west_windows_dropped_total counter",
                f"west_windows_dropped_total {self.dropped}",
                "# HELP west_throughput Audio seconds decoded per second of decoding.",
                "# TYPE west_throughput gauge",
                f"west_throughput {self.throughput:.6g}",
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
                "# HELP west_realtime_streams Realtime (WebSocket) streams open.",
                "# TYPE west_realtime_streams gauge",
                f"west_realtime_streams {self.streams_open}",
                "# HELP west_realtime_streams_total Realtime streams accepted.",
                "# TYPE west_realtime_streams_total counter",
                f"west_realtime_streams_total {self.streams}",
                "# HELP west_realtime_events_total Events sent to realtime streams, by type.",
                "# TYPE west_realtime_events_total counter",
                *(
                    f'west_realtime_events_total{{type="{k}"}} {n}'
                    for k, n in sorted(self.stream_events.items())
                ),
                "# HELP west_realtime_errors_total Error events sent to streams, by code.",
                "# TYPE west_realtime_errors_total counter",
                *(
                    f'west_realtime_errors_total{{code="{k}"}} {n}'
                    for k, n in sorted(self.stream_errors.items())
                ),
                "# HELP west_partials_total Partial texts for streams: decoded, or dropped "
                "as stale.",
                "# TYPE west_partials_total counter",
                *(
                    f'west_partials_total{{outcome="{k}"}} {n}'
                    for k, n in sorted(self.partials.items())
                ),
            ]
        return "\n".join(out) + "\n"
