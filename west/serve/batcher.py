"""Dynamic batching with fair turns: one worker thread owns the model and decodes the
windows of every pending request together, a window of each request in turn.

A request's recording is cut into windows exactly as west.Transcriber cuts it
(`Transcriber.windows`: at pauses, at most 28 s each; windows without speech are never
decoded); its windows to decode wait in the request's own queue. The worker takes the
oldest waiting window, waits until `max_batch_size` windows are pending or `max_wait_ms`
have passed since that window was queued (no wait when it was queued that long ago, e.g.
while the previous batch decoded), and fills a batch of up to `max_batch_size` windows a
window of each request at a time, the requests in turn (round robin, starting after the
last one served), so a request with 60 windows does not keep one with 1 waiting for all of
them. While requests are still arriving (`arriving()`: admitted, their upload being read and
decoded, their windows not queued yet) the worker waits for them up to `max_arrival_wait_ms`
instead: on CPU, reading a crowd's uploads takes longer than `max_wait_ms`, and without this
the crowd would be decoded in several smaller batches. WeST's batched search gives each window
the text it gets alone, so a request's text does not depend on the crowd it came with.

A batch gives way. A batch of long windows takes a minute on two CPU cores; a 4 s request
arriving meanwhile should not wait for it. So between two decoding steps (the search's
`step_hook`) the running batch pauses when requests that have no window in it are waiting,
and the worker decodes one window of each of them (up to `max_batch_size`) as a batch of its
own, then resumes; the paused batch then runs at least as long as it waited before it gives
way again, so neither side starves. Only one batch is ever paused (a batch decoded while
another waits does not give way): at most two batches' KV caches are held. Pending partial
texts of live streams are decoded at those points too.

Back-pressure is measured in time. The worker measures its throughput (audio seconds decoded
per second, a running mean over batches), and `submit` can refuse a request whose expected
wait is longer than `max_wait_s` (QueueFull, with the seconds after which the wait should
be short enough: the HTTP server's 503 and Retry-After). With turns taken a window at a
time, a new request of `a` seconds of speech waits for about min(q_j, a) seconds of each
waiting request j's queued audio q_j, so its expected wait is the sum of those over the
throughput: a short request is admitted beside a 25-minute one, and a crowd of long ones is
refused at once instead of being answered after minutes. The queue also holds at most
`max_queue` windows, so memory stays bounded whatever the throughput. A request whose
client went away is cancelled: its queued windows are dropped.

Live streams (west.serve.realtime) use the same worker: an utterance's final text is a
window like any other (`submit`, never refused for the wait: the stream was admitted when
it opened), decoded in the same batches as uploads' windows; its partial texts are
CTC-only jobs (`submit_partial`, `Transcriber.partial_texts`), decoded in batches of their
own: while a batch of windows is still filling (its `max_wait_ms` not yet spent), when a
batch gives way, and otherwise one batch of windows, then one of partials, in turn. A
stream cancels its partial's future when it asks for a newer one, and the worker drops
cancelled ones, so at most one partial per stream waits.

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
import torch

from west.data.audio import SAMPLE_RATE
from west.serve.metrics import Metrics
from west.transcriber import Segment, Transcriber, Window, join_texts

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """No room for a request now; try again in `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


@dataclasses.dataclass(eq=False)
class Job:
    """One request: its recording's windows and a future set (to the Job) once all its
    windows with speech are decoded. A `cancelled` job's queued windows are dropped."""

    windows: list[Window]
    duration: float  # seconds of audio
    future: concurrent.futures.Future = dataclasses.field(default_factory=concurrent.futures.Future)
    left: int = 0  # windows still to decode
    cancelled: bool = False
    words: bool = False  # word timestamps wanted (a model with a CTC branch)
    queue: collections.deque = dataclasses.field(default_factory=collections.deque)
    queued_seconds: float = 0.0  # audio of the windows in `queue`
    hotwords: list[str] = dataclasses.field(default_factory=list)  # the request's own

    @property
    def segments(self) -> list[Segment]:
        return [w.segment for w in self.windows]

    @property
    def text(self) -> str:
        return join_texts(self.segments)


def window_seconds(window: Window) -> float:
    return len(window.samples) / SAMPLE_RATE


class Batcher:
    """The decoding worker and its bounded, fair queue of windows (see the module docstring)."""

    def __init__(
        self,
        transcriber: Transcriber,
        max_batch_size: int = 16,
        max_wait_ms: float = 20.0,
        max_queue: int = 256,
        metrics: Metrics | None = None,
        max_arrival_wait_ms: float = 250.0,
        give_way: bool = True,
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
        self.max_queue = max_queue
        self.give_way = give_way
        self.metrics = metrics or Metrics()
        self._arriving = 0  # requests admitted whose windows are not queued yet
        # The requests with windows queued, in turn order (a dict as an ordered set).
        self._jobs: collections.OrderedDict[Job, None] = collections.OrderedDict()
        self._reserved: set[Job] = set()  # admitted requests not queued yet (reserve)
        self._windows = 0  # windows queued, all requests
        self._partials: collections.deque[tuple[np.ndarray, concurrent.futures.Future]] = (
            collections.deque()
        )
        self._cond = threading.Condition()
        self._closing = False
        self._windows_last = False  # the last batch was of windows: partials go next
        self._rate: float | None = None  # audio seconds decoded per second (running mean)
        self._running: set[Job] = set()  # the jobs of the batch that may give way
        self._paused = False  # a batch is paused while another decodes
        self._paused_seconds = 0.0  # time spent decoding while a batch was paused, in all
        self._turn_until = 0.0  # the resumed batch runs until then before giving way again
        # The decoding thread keeps the thread count of the thread that built the batcher:
        # its own setting, made when it starts, so that another thread's (the VAD runs on
        # one: west.data.vad.one_thread) cannot become its default.
        self._threads = torch.get_num_threads()
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

    # ---- the requests' side ------------------------------------------------------------

    @property
    def throughput(self) -> float | None:
        """Audio seconds decoded per second of decoding (None until a batch has run)."""
        return self._rate

    @property
    def queued_seconds(self) -> float:
        """Seconds of audio waiting to be decoded, all requests."""
        with self._cond:
            return sum(job.queued_seconds for job in self._jobs)

    def expected_wait(self, seconds: float) -> float:
        """Seconds a new request with `seconds` of audio to decode should wait for the
        others' windows, turns taken a window at a time (module docstring); 0 until the
        throughput is measured."""
        with self._cond:
            return self.audio_ahead(seconds) / self._rate if self._rate else 0.0

    def audio_ahead(self, seconds: float) -> float:
        """Seconds of the queued requests' audio decoded before a new request's `seconds`
        of audio are, turns taken a window at a time: the sum of min(queued, seconds)."""
        with self._cond:  # a re-entrant lock: submit_windows calls this holding it
            jobs = [*self._jobs, *self._reserved]
            return sum(min(job.queued_seconds, seconds) for job in jobs)

    def check_wait(self, seconds: float, max_wait_s: float | None) -> None:
        """QueueFull if a request with `seconds` of audio to decode would wait longer than
        `max_wait_s` (None: no limit) for the queued audio (expected_wait)."""
        if max_wait_s is None:
            return
        with self._cond:
            if not self._rate:
                return
            ahead = self.audio_ahead(seconds)
            wait = ahead / self._rate
        if wait > max_wait_s:
            raise QueueFull(
                f"server busy: this request would wait about {wait:.0f} s for {ahead:.0f} s "
                f"of other requests' audio (the server decodes {self._rate:.2g} s of audio a "
                f"second, and lets a request wait at most {max_wait_s:g} s: --max_wait_s); "
                "retry later",
                max(1, math.ceil(wait - max_wait_s)),
            )

    def submit(
        self,
        audio: np.ndarray,
        words: bool = False,
        max_wait_s: float | None = None,
        hotwords: list[str] | None = None,
    ) -> Job:
        """Queue (T,) 16 kHz `audio`'s windows (Transcriber.windows); see submit_windows."""
        windows = self.transcriber.windows(audio)
        return self.submit_windows(
            windows, len(audio) / SAMPLE_RATE, words, max_wait_s, hotwords=hotwords
        )

    def reserve(self, seconds: float, max_wait_s: float | None = None) -> Job:
        """Admit a request whose recording is `seconds` long before it is decoded (west-
        serve reads that from the file's header): QueueFull at once when it would wait
        longer than `max_wait_s` (check_wait). Until its windows are submitted
        (`submit_windows(..., job=)`) or it is `release`d, its seconds count as queued, so
        the requests that arrive meanwhile see it ahead of them."""
        with self._cond:
            self.check_wait(seconds, max_wait_s)
            job = Job([], seconds, queued_seconds=seconds)
            self._reserved.add(job)
            return job

    def release(self, job: Job) -> None:
        """Forget a reservation whose request failed before its windows were submitted."""
        with self._cond:
            self._reserved.discard(job)

    def submit_windows(
        self,
        windows: list[Window],
        duration: float,
        words: bool = False,
        max_wait_s: float | None = None,
        job: Job | None = None,
        hotwords: list[str] | None = None,
    ) -> Job:
        """Queue a recording's windows (those not `silent`); `duration`: its seconds;
        `hotwords`: the request's own (besides the server's).

        With `words`, its Segments get word timestamps (Transcriber.fill). Raises QueueFull
        when the windows do not fit in `max_queue`, or, with `max_wait_s`, when the
        request's expected wait (expected_wait) is longer than that. `job`: the request's
        reservation (`reserve`), already admitted: it becomes the returned Job."""
        todo = [w for w in windows if not w.silent]
        seconds = sum(window_seconds(w) for w in todo)
        with self._cond:
            if job is not None:
                self._reserved.discard(job)
                job.windows, job.duration, job.left, job.words = windows, duration, len(todo), words
                job.queued_seconds = 0.0
            else:
                job = Job(windows, duration, left=len(todo), words=words)
            job.hotwords = list(hotwords or [])
            if self._closing:
                raise RuntimeError("the decoding worker is shutting down")
            queued = sum(j.queued_seconds for j in self._jobs)
            if self._windows + len(todo) > self.max_queue:
                drain = (queued + seconds) / self._rate if self._rate else 1.0
                raise QueueFull(
                    f"server busy: {self._windows} windows queued (at most {self.max_queue}, "
                    f"--max_queue), this request needs {len(todo)}; retry later",
                    max(1, math.ceil(drain)),
                )
            if todo:
                self.check_wait(seconds, max_wait_s)
            if todo:
                now = time.monotonic()
                job.queue.extend((w, now) for w in todo)
                job.queued_seconds = seconds
                self._jobs[job] = None
                self._windows += len(todo)
                self.metrics.queued(len(todo), seconds)
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
        """Forget `job` (its client is gone): its queued windows are dropped."""
        with self._cond:
            job.cancelled = True
            if job in self._jobs:
                del self._jobs[job]
                self._windows -= len(job.queue)
                self.metrics.dequeued(0, len(job.queue), job.queued_seconds)
                job.queue.clear()
                job.queued_seconds = 0.0

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

    # ---- the worker's side -------------------------------------------------------------

    def _take(self, jobs: list[Job], each: int | None = None) -> list[tuple[Job, Window]]:
        """Up to `max_batch_size` queued windows of `jobs`, a window of each in turn (at
        most `each` of any one); the jobs served go to the back of the turns. Call with the
        lock held."""
        batch: list[tuple[Job, Window]] = []
        rounds = 0
        while (
            len(batch) < self.max_batch_size
            and any(job.queue for job in jobs)
            and (each is None or rounds < each)
        ):
            rounds += 1
            for job in jobs:
                if job.queue and len(batch) < self.max_batch_size:
                    window = job.queue.popleft()[0]
                    job.queued_seconds -= window_seconds(window)
                    batch.append((job, window))
        for job in dict.fromkeys(job for job, _ in batch):
            if job.queue:
                self._jobs.move_to_end(job)
            else:
                job.queued_seconds = 0.0  # no rounding left behind
                del self._jobs[job]
        seconds = sum(window_seconds(w) for _, w in batch)
        self._windows -= len(batch)
        self.metrics.dequeued(len(batch), 0, seconds)
        return batch

    def _next_batch(self) -> list[tuple[Job, Window]] | None:
        """The next windows to decode (None: closing and nothing left), waiting as the
        module docstring says; [] when it is the pending partials' turn."""
        with self._cond:
            while not self._jobs and not self._partials and not self._closing:
                self._cond.wait()
            if self._partials and not self._closing and (self._windows_last or not self._jobs):
                self._windows_last = False
                return []
            if not self._jobs:
                return None
            first = min(job.queue[0][1] for job in self._jobs)
            while self._windows < self.max_batch_size and not self._closing:
                wait = self.max_arrival_wait if self._arriving else self.max_wait
                left = first + wait - time.monotonic()
                if left <= 0:
                    break
                if self._partials:
                    return []  # decode them while this batch fills
                self._cond.wait(left)
            self._windows_last = True
            return self._take(list(self._jobs))  # [] if all were cancelled meanwhile

    def _run(self) -> None:
        torch.set_num_threads(self._threads)
        while (batch := self._next_batch()) is not None:
            if not batch:  # the partials' turn (or all windows were cancelled)
                self._decode_partials()
                continue
            self._running = {job for job, _ in batch}
            try:
                self._decode(batch, self._give_way if self.give_way else None)
            finally:
                self._running = set()

    def _give_way(self) -> None:
        """Called between two decoding steps of the running batch: decode the pending
        partials and one window of each waiting request that has none in that batch, as a
        batch of their own (module docstring)."""
        if self._paused or time.monotonic() < self._turn_until:
            return
        with self._cond:
            waiting = [job for job in self._jobs if job not in self._running]
            batch = self._take(waiting, each=1) if waiting else []
            partials = bool(self._partials)
        if not batch and not partials:
            return
        start = time.monotonic()
        self._paused = True
        try:
            if partials:
                self._decode_partials()
            if batch:
                self._decode(batch, None)
        finally:
            self._paused = False
            spent = time.monotonic() - start
            self._paused_seconds += spent
            self._turn_until = time.monotonic() + spent

    def _decode(self, batch: list[tuple[Job, Window]], step_hook) -> None:
        """Decode one batch of windows, answer the requests it completes, and update the
        measured throughput (time spent in batches that it gave way to left out)."""
        batch.sort(key=lambda p: -len(p[1].samples))  # similar lengths: little padding
        words = any(job.words for job, _ in batch)  # CTC posteriors only when asked for
        start, paused = time.monotonic(), self._paused_seconds
        try:
            texts = self.transcriber.decode_windows(
                [w.samples for _, w in batch],
                hypotheses=words,
                step_hook=step_hook,
                context=[job.hotwords for job, _ in batch],
            )
        except Exception as e:  # a failing batch fails its requests, not the server
            logger.exception("decoding a batch of %d windows failed", len(batch))
            for job in dict.fromkeys(job for job, _ in batch):
                self.cancel(job)
                if not job.future.done():
                    job.future.set_exception(e)
            return
        spent = time.monotonic() - start - (self._paused_seconds - paused)
        if spent > 0:
            rate = sum(window_seconds(w) for _, w in batch) / spent
            self._rate = rate if self._rate is None else 0.8 * self._rate + 0.2 * rate
            self.metrics.throughput = self._rate
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
