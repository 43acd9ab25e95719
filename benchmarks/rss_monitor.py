"""Peak resident memory per labelled stretch of a run, sampled by a background thread."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import threading
from collections import defaultdict


def _malloc_trim() -> None:
    """Give freed heap memory back to the OS, so one path's peak RSS is not the last one's."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class RssMonitor:
    """Samples the resident set size every few ms and keeps the peak per label."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.label: str | None = None
        self.peaks: dict[str, int] = defaultdict(int)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        if self.label is not None:
            self.peaks[self.label] = max(self.peaks[self.label], _rss_bytes())

    @contextlib.contextmanager
    def track(self, label: str):
        _malloc_trim()
        self.label = label
        self.sample()
        try:
            yield
        finally:
            self.sample()
            self.label = None

    def __enter__(self) -> RssMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mb(self, label: str) -> float:
        return round(self.peaks.get(label, 0) / 2**20, 1)
