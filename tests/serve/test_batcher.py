"""The dynamic batcher: a crowd whose uploads take longer than --max_wait_ms to arrive is
still decoded as one batch, and each request gets the text it gets alone."""

from __future__ import annotations

import threading
import time

import pytest

import west
from west.data.audio import SAMPLE_RATE, load_audio
from west.serve.batcher import Batcher

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def transcriber(random_model_dir):
    return west.load(random_model_dir, device="cpu", max_new_tokens=6)


@pytest.fixture(scope="module")
def audios(speech_dir):
    return [load_audio(p) for p in sorted(speech_dir.glob("*.wav"))[:4]]


def crowd(batcher: Batcher, audios, gap: float) -> list[str]:
    """All requests are admitted at once (`arriving`), then their uploads are ready one
    after the other, `gap` seconds apart; the texts they get, in order."""
    jobs = [None] * len(audios)
    admitted = threading.Barrier(len(audios))

    def request(i: int) -> None:
        with batcher.arriving():
            admitted.wait()
            time.sleep(gap * i)  # reading and decoding the upload
            jobs[i] = batcher.submit(audios[i])
        jobs[i].future.result(timeout=300)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(audios))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return [job.text for job in jobs]


@pytest.mark.parametrize("arrival_wait_ms", [5000.0, 0.0])
def test_waits_for_requests_still_arriving(transcriber, audios, arrival_wait_ms):
    alone = [transcriber.transcribe(a, SAMPLE_RATE) for a in audios]
    assert all(len(transcriber.windows(a)) == 1 for a in audios)
    batcher = Batcher(
        transcriber, max_batch_size=16, max_wait_ms=5, max_arrival_wait_ms=arrival_wait_ms
    ).start()
    try:
        texts = crowd(batcher, audios, gap=0.15)
    finally:
        batcher.close()
    batches = batcher.metrics.batch_sizes.count
    if arrival_wait_ms:
        assert batches == 1, "the worker did not wait for the requests still arriving"
    else:
        # Windows 150 ms apart, 5 ms of waiting: more than one batch (some may pile up
        # behind a batch being decoded).
        assert batches > 1
    assert texts == alone


def test_words_only_for_the_requests_that_ask(model_args, speech_dir, audios, tmp_path):
    """A CTC model's windows are aligned for a request that wants word times, not for the
    one beside it in the same batch, whose text is the same either way."""
    from ctc_models import write_ctc_model_dir

    texts = (speech_dir / "text").read_text().splitlines()
    model_dir = write_ctc_model_dir(
        model_args, tmp_path / "ctc", [t.split(" ", 1)[1] for t in texts]
    )
    ctc = west.load(model_dir, device="cpu", max_new_tokens=6, ctc_weight=0.0)
    batcher = Batcher(ctc, max_batch_size=16, max_wait_ms=500).start()
    try:
        plain, timed = batcher.submit(audios[0]), batcher.submit(audios[0], words=True)
        plain.future.result(timeout=300)
        timed.future.result(timeout=300)
    finally:
        batcher.close()
    assert batcher.metrics.batch_sizes.count == 1  # decoded together
    assert plain.text == timed.text == ctc.transcribe(audios[0], SAMPLE_RATE)
    assert all(s.words is None for s in plain.segments)
    assert [w.word for s in timed.segments for w in s.words] == timed.text.split()
