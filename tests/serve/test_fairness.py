"""Fair turns and honest back-pressure in the batcher (tiny random model, real speech):
a short request is not kept waiting by a long one's batch (the batch gives way between two
decoding steps) and gets the text it gets alone; the queue is measured in audio seconds,
turns taken a window at a time; past --max_wait_s a request is refused at once."""

from __future__ import annotations

import time

import numpy as np
import pytest

import west
from west.data.audio import SAMPLE_RATE, load_audio
from west.serve.batcher import Batcher, QueueFull

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def transcriber(random_model_dir):
    # A random model rarely stops: a window decodes to its cap, 120 tokens for a long
    # window, 12 a second (+ 10) for a short one.
    return west.load(random_model_dir, device="cpu", max_new_tokens=120, num_beams=1)


@pytest.fixture(scope="module")
def sentences(speech_dir) -> list[np.ndarray]:
    return [load_audio(p) for p in sorted(speech_dir.glob("*.wav"))]


def long_windows(transcriber, sentences, n: int = 16):
    """`n` windows of about 25 s of speech each (the sentences over and over, 0.3 s apart)
    and their seconds: a long request's worth, decoded as one batch of 16."""
    gap = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)
    pieces, windows = [], []
    while len(windows) < n:
        for audio in sentences:
            pieces += [audio, gap]
            if sum(map(len, pieces)) > 24 * SAMPLE_RATE:
                windows += transcriber.windows(np.concatenate(pieces))
                pieces = []
    windows = windows[:n]
    assert all(not w.silent for w in windows)
    return windows, sum(len(w.samples) for w in windows) / SAMPLE_RATE


def timed(batcher, submit) -> tuple[object, float]:
    start = time.perf_counter()
    job = submit()
    job.future.result(timeout=600)
    return job, time.perf_counter() - start


def wait_until_decoding(batcher, timeout: float = 60) -> None:
    """Until the worker has taken every queued window into its batch."""
    deadline = time.monotonic() + timeout
    while batcher.metrics.queue_windows and time.monotonic() < deadline:
        time.sleep(0.005)


@pytest.mark.parametrize("give_way", [True, False])
def test_short_request_is_not_kept_waiting_by_a_long_batch(transcriber, sentences, give_way):
    """The tiny model's long batch is mostly its encoder and prefill (which cannot pause),
    so what is asserted is the order: giving way, the short request is answered while the
    long batch is still decoding, in less time than the long batch takes; without, after."""
    short = sentences[0]
    batcher = Batcher(transcriber, max_batch_size=16, max_wait_ms=0, give_way=give_way).start()
    try:
        timed(batcher, lambda: batcher.submit(short))  # warm-up
        alone, alone_s = timed(batcher, lambda: batcher.submit(short))
        first, long_s = timed(
            batcher, lambda: batcher.submit_windows(*long_windows(transcriber, sentences))
        )
        long_job = batcher.submit_windows(*long_windows(transcriber, sentences))
        wait_until_decoding(batcher)
        crowded, crowded_s = timed(batcher, lambda: batcher.submit(short))
        long_done_first = long_job.future.done()
        long_job.future.result(timeout=600)
    finally:
        batcher.close()
    assert crowded.text == alone.text  # the text it gets alone
    assert long_job.text == first.text  # paused and resumed (or not): the same texts
    if give_way:
        assert not long_done_first and crowded_s < long_s, (crowded_s, alone_s, long_s)
    else:  # it waits for the rest of the long batch, then is decoded
        assert long_done_first, (crowded_s, alone_s, long_s)


def test_turns_are_taken_a_window_at_a_time(transcriber, sentences):
    batcher = Batcher(transcriber, max_batch_size=4)  # not started: nothing is decoded
    windows, seconds = long_windows(transcriber, sentences, 12)
    long_job = batcher.submit_windows(windows, seconds)
    short = batcher.submit(sentences[0])
    short_s = len(sentences[0]) / SAMPLE_RATE
    # a new request of 2 s waits for 2 s of each queued request's audio at most
    assert batcher.audio_ahead(2.0) == pytest.approx(4.0)
    assert batcher.audio_ahead(1000.0) == pytest.approx(seconds + short_s)
    assert batcher.expected_wait(2.0) == 0.0  # no throughput measured yet
    with batcher._cond:
        batch = batcher._take(list(batcher._jobs))
    # the short request's one window in the first batch, beside three of the long one's
    assert [job is short for job, _ in batch].count(True) == 1 and len(batch) == 4
    assert batcher.metrics.queue_windows == 12 - 3
    batcher.cancel(long_job)
    assert batcher.metrics.queue_windows == 0 and batcher.audio_ahead(1000.0) == 0.0


def test_past_max_wait_a_request_is_refused_at_once(transcriber, sentences):
    # Not giving way, so that the queue stays as it is while the first batch decodes.
    batcher = Batcher(transcriber, max_batch_size=16, max_wait_ms=0, give_way=False).start()
    try:
        timed(batcher, lambda: batcher.submit(sentences[0]))  # measures the throughput
        rate = batcher.throughput
        assert rate and rate > 0
        requests = [long_windows(transcriber, sentences, 16) for _ in range(5)]
        seconds = requests[0][1]
        first = batcher.submit_windows(*requests[0])
        wait_until_decoding(batcher)
        queued = [batcher.submit_windows(*request) for request in requests[1:4]]
        ahead = batcher.audio_ahead(seconds)
        assert ahead == pytest.approx(3 * seconds)
        limit = 0.5 * ahead / batcher.throughput
        start = time.perf_counter()
        with pytest.raises(QueueFull, match=r"would wait about \d+ s .*--max_wait_s") as e:
            batcher.submit_windows(*requests[4], max_wait_s=limit)
        assert time.perf_counter() - start < 1.0
        expected = batcher.expected_wait(seconds)
        assert e.value.retry_after >= 1
        assert abs(e.value.retry_after - (expected - limit)) <= 1 + 0.3 * expected
        # a short request beside them waits for little: admitted
        short = batcher.submit(sentences[0], max_wait_s=limit)
        for job in [first, *queued, short]:
            job.future.result(timeout=600)
    finally:
        batcher.close()
