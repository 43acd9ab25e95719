"""west.streaming.Stream on real speech: espeak-ng utterances separated by pauses, fed in
chunks at 24 kHz to tiny random models (with and without a CTC branch), with the real
Silero VAD.

The model's texts are garbage but deterministic, so a Final is compared with
`Transcriber.decode_windows` of the same 16 kHz samples (streaming must add nothing to what
the model says), and runs are compared with each other (chunk sizes, injected decoders).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from conftest import SENTENCES, synthesize

import west
from west.data.vad import speech_detector
from west.streaming import (
    Committed,
    Final,
    Partial,
    SpeechStarted,
    SpeechStopped,
    Stream,
    decode_with,
)
from west.transcriber import Transcriber

RATE = 24000  # what OpenAI's realtime clients send
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def ctc_transcriber(model_args):
    from west.models.build import build_model

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(model_args, ctc_conf={"weight": 1.0})).eval()
    return Transcriber(model, max_new_tokens=6)


def speech_recording(tmp_path, sentences, gaps, rate=RATE, lead=0.8, noise=3e-4):
    """espeak-ng `sentences` with `gaps` seconds of silence (and a faint noise floor) after
    each: (samples at `rate`, [(speech start, speech end)] in seconds)."""
    pieces, bounds, at = [np.zeros(int(lead * rate), np.float32)], [], int(lead * rate)
    for i, (text, gap) in enumerate(zip(sentences, gaps)):
        x, sr = sf.read(synthesize(text, tmp_path / f"s{i}.wav"), dtype="float32")
        x = soxr.resample(x, sr, rate).astype(np.float32)
        loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
        bounds.append(((at + loud[0]) / rate, (at + loud[-1]) / rate))
        pieces += [x, np.zeros(int(gap * rate), np.float32)]
        at += len(x) + int(gap * rate)
    audio = np.concatenate(pieces)
    audio += np.random.default_rng(0).standard_normal(len(audio)).astype(np.float32) * noise
    return audio, bounds


def chunks(audio, seconds, rate=RATE):
    n = int(seconds * rate)
    return [audio[i : i + n] for i in range(0, len(audio), n)]


def at_16k(audio, rate=RATE):
    """The 16 kHz samples a Stream works on (its streaming resampler gives exactly these)."""
    return soxr.resample(audio, rate, 16000, quality="HQ").astype(np.float32)


def span(audio16, start, end):
    return audio16[round(start * 16000) : round(end * 16000)]


def by_utterance(events):
    groups: dict[int, list] = {}
    for e in events:
        groups.setdefault(e.index, []).append(e)
    return [groups[i] for i in sorted(groups)]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streaming")
    return speech_recording(tmp, SENTENCES[:4], [1.0, 1.5, 1.2, 1.0])


@pytest.fixture(scope="module")
def events_100ms(ctc_transcriber, recording):
    audio, _ = recording
    return list(Stream(ctc_transcriber).run(chunks(audio, 0.1), RATE))


def test_silero_is_the_detector_and_leaves_torch_threads_alone():
    threads = torch.get_num_threads()
    assert speech_detector().name == "silero"
    assert torch.get_num_threads() == threads


def test_one_utterance_per_sentence_with_partials_and_offline_finals(
    ctc_transcriber, recording, events_100ms
):
    audio, bounds = recording
    audio16 = at_16k(audio)
    utterances = by_utterance(events_100ms)
    assert len(utterances) == len(bounds)
    previous_end = 0.0
    for events, (true_start, true_end) in zip(utterances, bounds):
        kinds = [type(e) for e in events]
        assert kinds[0] is SpeechStarted and kinds[-3:] == [SpeechStopped, Committed, Final]
        assert set(kinds[1:-3]) == {Partial}, kinds  # partials, and only partials, meanwhile
        started, stopped, committed, final = events[0], events[-3], events[-2], events[-1]
        assert started.start == pytest.approx(true_start, abs=0.15)
        assert stopped.end == pytest.approx(true_end, abs=0.2)
        assert started.audio_start == pytest.approx(started.start - 0.3)  # prefix padding
        assert stopped.audio_end - stopped.end == pytest.approx(0.5, abs=0.04)  # min_silence
        assert (final.start, final.end) == (committed.start, committed.end)
        assert (final.start, final.end) == (started.audio_start, stopped.audio_end)
        assert final.start >= previous_end
        previous_end = final.end
        partials = [e for e in events if isinstance(e, Partial)]
        assert partials and all(p.text for p in partials)
        assert all(p.start == final.start and p.end <= final.end + 0.1 for p in partials)
        # The CTC branch's text of the audio so far, as partial_texts gives it.
        last = partials[-1]
        assert last.text == ctc_transcriber.partial_texts([span(audio16, last.start, last.end)])[0]
        # The full decoding of the utterance's audio, no more, no less.
        assert final.text and final.error is None
        assert (
            final.text == ctc_transcriber.decode_windows([span(audio16, final.start, final.end)])[0]
        )
    # Stream order: an utterance's events all come before the next one starts.
    assert [e.index for e in events_100ms] == sorted(e.index for e in events_100ms)


def _finals(events):
    return [e for e in events if isinstance(e, Final)]


def test_offline_vad_segmentation_gives_the_live_finals(ctc_transcriber, recording, events_100ms):
    """A whole recording transcribed offline with segmentation "vad" is cut and decoded as
    the live stream was: the same utterances, times and texts as its finals."""
    audio, _ = recording
    offline = Transcriber(ctc_transcriber.model, max_new_tokens=6, segmentation="vad")
    segments = offline.transcribe(at_16k(audio), 16000, return_segments=True)
    finals = _finals(events_100ms)
    assert len(finals) == len(recording[1])
    assert [(s.start, s.end, s.text) for s in segments] == [
        (f.start, f.end, f.text) for f in finals
    ]
    # The default cuts differently (windows covering everything); both hold the speech.
    assert len(ctc_transcriber.windows(at_16k(audio))) == 1


def test_same_finals_whatever_the_chunks(ctc_transcriber, recording, events_100ms):
    audio, _ = recording
    one_second = list(Stream(ctc_transcriber).run(chunks(audio, 1.0), RATE))
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(len(audio), 40, replace=False))
    ragged = list(Stream(ctc_transcriber).run(np.split(audio, cuts), RATE))
    assert _finals(one_second) == _finals(ragged) == _finals(events_100ms)
    # Partials come at most once per feed: fewer for bigger chunks, but they still come.
    partials = [e for e in one_second if isinstance(e, Partial)]
    assert 0 < len(partials) < sum(isinstance(e, Partial) for e in events_100ms)


def test_injected_futures_give_the_same_events_through_poll(
    ctc_transcriber, recording, events_100ms
):
    """A decoder that answers later (as the server's batcher does): events wait for their
    text, Finals stay in order, and `on_ready` says when to poll."""
    audio, _ = recording
    decode = decode_with(ctc_transcriber)
    ready = []
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        stream = Stream(
            decode=lambda x: pool.submit(decode, x),
            partial=False,
            max_utterance=ctc_transcriber.max_window_seconds,
            on_ready=lambda: ready.append(1),
        )
        events = []
        for chunk in chunks(audio, 0.1):
            events += stream.feed(chunk, RATE)
            events += stream.poll()
        events += stream.close()
    assert not any(isinstance(e, Partial) for e in events)
    assert _finals(events) == _finals(events_100ms)
    assert len(ready) >= len(_finals(events))
    expected = [e for e in events_100ms if not isinstance(e, Partial)]
    assert sorted(events, key=lambda e: e.index) == expected


def test_model_without_ctc_gives_finals_and_no_partials(random_model_dir, recording):
    plain = west.load(random_model_dir, device="cpu", max_new_tokens=6)
    audio, bounds = recording
    audio = audio[: int((bounds[1][1] + 1.0) * RATE)]  # the first two sentences
    events = list(Stream(plain).run(chunks(audio, 0.1), RATE))
    assert not any(isinstance(e, Partial) for e in events)
    finals = _finals(events)
    assert len(finals) == 2
    audio16 = at_16k(audio)
    for f in finals:
        assert f.text == plain.decode_windows([span(audio16, f.start, f.end)])[0]


def test_long_speech_is_cut_at_max_utterance(ctc_transcriber, tmp_path):
    """Speech with no pause longer than `max_utterance`: utterances end there, cut at a
    dip between words, and the next one starts exactly at the cut."""
    audio, bounds = speech_recording(tmp_path, SENTENCES[:2], [0.05, 1.0])
    stream = Stream(ctc_transcriber, max_utterance=2.0, partial_interval=0)
    events = list(stream.run(chunks(audio, 0.1), RATE))
    finals = _finals(events)
    assert len(finals) >= 3
    assert all(f.end - f.start <= 2.0 for f in finals)
    assert all(a.end == b.start for a, b in zip(finals, finals[1:-1]))
    audio16 = at_16k(audio)
    for f in finals:
        assert f.text == ctc_transcriber.decode_windows([span(audio16, f.start, f.end)])[0]
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    assert len(starts) == len(finals)


def test_without_turn_detection_flush_ends_the_utterance(ctc_transcriber, recording):
    audio, bounds = recording
    audio = audio[: int((bounds[1][1] + 1.0) * RATE)]
    stream = Stream(ctc_transcriber, turn_detection=False)
    events = []
    for chunk in chunks(audio, 0.1):
        events += stream.feed(chunk, RATE)
    assert {type(e) for e in events} == {Partial}  # no VAD: no speech events, no cut
    events = stream.close()
    assert [type(e) for e in events] == [Committed, Final]
    audio16 = at_16k(audio)
    final = events[-1]
    assert (final.start, final.end) == (0.0, len(audio16) / 16000)
    assert final.text == ctc_transcriber.decode_windows([audio16])[0]


def test_clear_drops_the_open_utterance(ctc_transcriber, recording):
    audio, bounds = recording
    cut = int((bounds[0][1] + 0.2) * RATE)  # the first sentence said, its pause not yet over
    stream = Stream(ctc_transcriber)
    events = stream.feed(audio[:cut], RATE)
    assert stream.in_utterance and isinstance(events[0], SpeechStarted)
    stream.clear()
    assert not stream.in_utterance
    rest = stream.feed(audio[cut:], RATE) + stream.close()
    assert [f.index for f in _finals(rest)] == list(range(1, len(bounds)))
    assert _finals(rest)[0].start > cut / RATE


def test_frame_energy_stands_in_when_silero_is_missing(
    ctc_transcriber, recording, monkeypatch, caplog
):
    import west.data.vad as vad

    monkeypatch.setattr(vad, "_silero", None)  # not loaded yet, and not to be found
    monkeypatch.setattr(vad, "silero_path", lambda: None)
    monkeypatch.setattr(vad, "_warned", False)
    detector = vad.speech_detector()
    assert detector.name == "energy" and "silero-vad could not be loaded" in caplog.text
    audio, bounds = recording
    events = list(Stream(ctc_transcriber, detector=detector).run(chunks(audio, 0.1), RATE))
    starts = [e.start for e in events if isinstance(e, SpeechStarted)]
    assert starts == pytest.approx([start for start, _ in bounds], abs=0.15)


def test_bad_input_is_refused_with_what_was_expected(ctc_transcriber):
    with pytest.raises(ValueError, match="Transcriber or a decode"):
        Stream()
    stream = Stream(ctc_transcriber)
    with pytest.raises(ValueError, match="positive integer"):
        stream.feed(np.zeros(100, np.float32), 0)
    with pytest.raises(ValueError, match=r"expected \(T,\)"):
        stream.feed(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="threshold=1.5: expected in"):
        Stream(ctc_transcriber, threshold=1.5)
    stream.close()
    with pytest.raises(RuntimeError, match="closed"):
        stream.feed(np.zeros(100, np.float32))


def test_silero_runs_on_one_thread_and_leaves_the_callers_setting(recording):
    """Silero's tiny per-frame ops run on one torch thread (west.data.vad.one_thread); the
    calling thread's thread count is back as it was after, in the main thread and in another
    (west-serve runs the VAD in its upload threads, beside a decoding thread that keeps its
    own count), and the probabilities are the same whatever the caller's count."""
    import concurrent.futures

    import torch

    import west.data.vad as vad

    audio, _ = recording
    frames = audio[: len(audio) // vad.FRAME * vad.FRAME].reshape(-1, vad.FRAME)
    detector = vad.speech_detector()
    seen = []
    original = detector._net

    def spy(x, state):
        seen.append(torch.get_num_threads())
        return original(x, state)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        detector._net = spy
        detector.reset()
        main = detector.probabilities(frames)
        assert torch.get_num_threads() == 2 and set(seen) == {1}

        def in_a_thread():
            detector.reset()
            return detector.probabilities(frames), torch.get_num_threads()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            other, threads_after = pool.submit(in_a_thread).result()
        assert threads_after == 2 and torch.get_num_threads() == 2
        np.testing.assert_array_equal(main, other)
    finally:
        detector._net = original
        torch.set_num_threads(before)
