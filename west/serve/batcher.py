"""Dynamic batching: one worker thread owns the model and decodes the windows of every
pending request together.

A request's recording is cut into windows exactly as west.Transcriber cuts it
(`Transcriber.windows`: at pauses, at most 28 s each, silent ones never decoded); its
non-silent windows join one queue shared by all requests. The worker takes the oldest
window, waits until `max_batch_size` windows are pending or `max_wait_ms` have passed since
that window was queued (no wait at all when it was queued that long ago, e.g. while the
previous batch decoded), and decodes up to `max_batch_size` windows as one batch
(`Transcriber.decode_windows`). While requests are still arriving (`arriving()`: admitted,
their upload being read and decoded, their windows not queued yet) the worker waits for them
up to `max_arrival_wait_ms` instead: on CPU, reading a crowd's uploads takes longer than
`max_wait_ms`, and without this the crowd would be decoded in several smaller batches. WeST's batched search gives each window the text it gets
alone, so a request's text does not depend on the crowd it came with.

The queue holds at most `max_queue` windows: `submit` refuses more (QueueFull), so memory
stays bounded under overload. A request whose client went away is cancelled; its windows
still queued are dropped when the worker reaches them.

Live streams (west.serve.realtime) use the same worker: an utterance's final text is a
window like any other (`submit`), decoded in the same batches as uploads' windows; its
partial texts are CTC-only jobs (`submit_partial`, `Transcriber.partial_texts`), decoded
in batches of their own. Partials must not starve the rest: the worker decodes the
pending partials while a batch of windows is still filling (its `max_wait_ms` not yet
spent), and otherwise one batch of windows, then one of partials, in turn; a stream
cancels its partial's future when it asks for a newer one, and the worker drops cancelled
ones, so at most one partial per stream waits.

Why a thread, not an asyncio task: decoding is seconds of blocking torch work, which must
not stall the event loop that reads uploads and answers /health.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import logging
import math
import threading
import time

import numpy as np

from west.data.audio import SAMPLE_RATE
from west.serve.metrics import Metrics
from west.transcriber import Segment, Transcriber, Window, join_texts

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The queue has no room for a request's windows; try again in `retry_after` seconds."""

    def __init__(self, windows: int, queued: int, max_queue: int, retry_after: int):
        super().__init__(
            f"server busy: {queued} windows queued (at most {max_queue}), this request needs "
            f"{windows}; retry after {retry_after} s"
        )
        self.retry_after = retry_after


@dataclasses.dataclass(eq=False)
class Job:
    """One request: its recording's windows and a future set (to the Job) once all its
    non-silent windows are decoded. `cancelled` jobs' queued windows are skipped."""

    windows: list[Window]
    duration: float  # seconds of audio
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)
    left: int = 0  # windows still to decode
    cancelled: bool = False
    words: bool = False  # word timestamps wanted (a model with a CTC branch)

    @property
    def segments(self) -> list[Segment]:
        return [w.segment for w in self.windows]

    @property
    def text(self) -> str:
        return join_texts(self.segments)


class Batcher:
    """The decoding worker and its bounded queue of windows (see the module docstring)."""

    def __init__(
        self,
        transcriber: Transcriber,
        max_batch_size: int = 16,
        max_wait_ms: float = 20.0,
        max_queue: int = 256,
        metrics: Metrics | None = None,
        max_arrival_wait_ms: float = 250.0,
    ):
        if max_batch_size < 1 or max_queue < 1 or min(max_wait_ms, max_arrival_wait_ms) < 0:
            raise ValueError(
                f"max_batch_size={max_batch_size}, max_queue={max_queue}, max_wait_ms="
                f"{max_wait_ms}, max_arrival_wait_ms={max_arrival_wait_ms}: expected batch and "
                "queue sizes >= 1 and waits >= 0"
            )
        self.transcriber = transcriber
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_arrival_wait = max(max_arrival_wait_ms, max_wait_ms) / 1000
        self._arriving = 0  # requests admitted whose windows are not queued yet
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self._queue: collections.deque[tuple[Job, Window, float]] = collections.deque()
        self._partials: collections.deque[tuple[np.ndarray, concurrent.futures.Future]] = (
            collections.deque()
        )
        self._cond = threading.Condition()
        self._closing = False
        self._windows_last = False  # the last batch was of windows: partials go next
        self._batch_seconds = 1.0  # running mean of a batch's decoding time, for Retry-After
        self._thread = threading.Thread(target=self._run, name="west-decoder", daemon=True)

    def start(self) -> Batcher:
        self._thread.start()
        return self

    @contextlib.contextmanager
    def arriving(self):
        """Mark a request as on its way (upload being read and decoded) until it has called
        `submit` or failed: the worker waits for it (module docstring)."""
        with self._cond:
            self._arriving += 1
        try:
            yield
        finally:
            with self._cond:
                self._arriving -= 1
                self._cond.notify()

    def submit(self, audio: np.ndarray, words: bool = False) -> Job:
        """Queue (T,) 16 kHz `audio`'s windows; raises QueueFull when they do not fit.
        With `words`, its Segments get word timestamps (Transcriber.fill)."""
        windows = self.transcriber.windows(audio)
        todo = [w for w in windows if not w.silent]
        job = Job(windows, len(audio) / SAMPLE_RATE, left=len(todo), words=words)
        with self._cond:
            if self._closing:
                raise RuntimeError("the decoding worker is shutting down")
            if len(self._queue) + len(todo) > self.max_queue:
                batches = math.ceil((len(self._queue) + len(todo)) / self.max_batch_size)
                retry = max(1, math.ceil(batches * self._batch_seconds))
                raise QueueFull(len(todo), len(self._queue), self.max_queue, retry)
            now = time.monotonic()
            self._queue.extend((job, w, now) for w in todo)
            self.metrics.queued(len(todo))
            self._cond.notify()
        if not todo:
            job.future.set_result(job)
        return job

    def submit_partial(self, audio: np.ndarray) -> concurrent.futures.Future:
        """Queue a partial text (the CTC branch's best path) of (T,) 16 kHz `audio`, at most
        one window long: a Future of the text. Cancel the Future to drop the job."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._cond:
            if self._closing:
                raise RuntimeError("the decoding worker is shutting down")
            self._partials.append((audio, future))
            self._cond.notify()
        return future

    def cancel(self, job: Job) -> None:
        """Forget `job` (its client is gone): its queued windows will not be decoded."""
        with self._cond:
            job.cancelled = True

    def close(self) -> None:
        """Decode what is queued, then stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join()
        with self._cond:
            for _, future in self._partials:
                future.cancel()
            self._partials.clear()

    def _next_batch(self) -> list[tuple[Job, Window]] | None:
        """The next windows to decode (None: closing and nothing left), waiting as the
        module docstring says; [] when it is the pending partials' turn."""
        with self._cond:
            while not self._queue and not self._partials and not self._closing:
                self._cond.wait()
            if self._partials and not self._closing and (self._windows_last or not self._queue):
                self._windows_last = False
                return []
            if not self._queue:
                return None
            first = self._queue[0][2]
            while len(self._queue) < self.max_batch_size and not self._closing:
                wait = self.max_arrival_wait if self._arriving else self.max_wait
                left = first + wait - time.monotonic()
                if left <= 0:
                    break
                if self._partials and not self._closing:
                    return []  # decode them while this batch fills
                self._cond.wait(left)
            batch, dropped = [], 0
            while self._queue and len(batch) < self.max_batch_size:
                job, window, _ = self._queue.popleft()
                if job.cancelled:
                    dropped += 1
                else:
                    batch.append((job, window))
            self.metrics.batch_decoded(len(batch), dropped)
            self._windows_last = True
            return batch

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not batch:  # the partials' turn (or only cancelled windows were left)
                self._decode_partials()
                continue
            start = time.perf_counter()
            batch.sort(key=lambda p: -len(p[1].samples))  # similar lengths: little padding
            words = any(job.words for job, _ in batch)  # CTC posteriors only when asked for
            try:
                texts = self.transcriber.decode_windows(
                    [w.samples for _, w in batch], hypotheses=words
                )
            except Exception as e:  # a failing batch fails its requests, not the server
                logger.exception("decoding a batch of %d windows failed", len(batch))
                for job in {job for job, _ in batch}:
                    if not job.future.done():
                        job.future.set_exception(e)
                continue
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.perf_counter() - start)
            for (job, window), text in zip(batch, texts):
                # its text, and its words if asked for
                self.transcriber.fill(window, text if job.words else getattr(text, "text", text))
                job.left -= 1
                if job.left == 0 and not job.future.done():
                    self.metrics.transcribed(job.duration)
                    job.future.set_result(job)

    def _decode_partials(self) -> None:
        """Decode up to `max_batch_size` pending partials (cancelled ones dropped) as one
        batch; a failure fails those partials only."""
        with self._cond:
            batch, dropped = [], 0
            while self._partials and len(batch) < self.max_batch_size:
                audio, future = self._partials.popleft()
                if future.set_running_or_notify_cancel():
                    batch.append((audio, future))
                else:
                    dropped += 1
        if not batch:
            if dropped:
                self.metrics.partials_decoded(0, dropped)
            return
        self.metrics.partials_decoded(len(batch), dropped)
        batch.sort(key=lambda p: -len(p[0]))
        try:
            texts = self.transcriber.partial_texts([audio for audio, _ in batch])
        except Exception as e:
            logger.exception("decoding a batch of %d partials failed", len(batch))
            for _, future in batch:
                future.set_exception(e)
            return
        for (_, future), text in zip(batch, texts):
            future.set_result(text)
