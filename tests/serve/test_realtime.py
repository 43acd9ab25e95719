"""Live transcription through a real west-serve's WebSocket (/v1/realtime), driven by the
official `openai` client's realtime connection and by a plain `websockets` client.

A minute of espeak-ng speech (twelve sentences with pauses) is streamed in 100 ms chunks
of base64 24 kHz PCM16; each sentence must come back as one item (speech_started, deltas
while it is spoken, speech_stopped, committed, completed) whose transcript is what the
server's HTTP endpoint says of the same 16 kHz samples. Malformed events, unsupported
formats and rates get error events on a connection that stays usable; a client that
vanishes mid-stream is freed while another stream and HTTP requests are served.

The tiny model is random (with a CTC branch, for partials): texts are garbage, but
deterministic, so they are compared between paths, never to references.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import threading
import time

import numpy as np
import pytest
import requests
import soundfile as sf
import soxr
from conftest import SENTENCES, synthesize
from server_process import start_server

from west.serve.realtime import stable_delta

openai = pytest.importorskip("openai", reason="pip install openai (the dev extra)")
websockets_sync = pytest.importorskip("websockets.sync.client")
from websockets.exceptions import ConnectionClosed  # noqa: E402  (after the importorskip)

RATE = 24000
CHUNK = RATE // 10  # 100 ms
PACE = 0.02  # seconds between chunks: five times faster than real time
PREFIX, SILENCE = 0.3, 0.5  # OpenAI's server_vad defaults, the server's too
ENGLISH = SENTENCES + [  # twelve sentences: about a minute with the pauses
    "we measured every step on the same machine",
    "a cold wind blew across the empty harbour",
    "it rained all night and the river rose above its banks",
    "our train leaves at a quarter past eight from platform two",
    "the children ran down the hill toward the old stone bridge",
    "she plays the violin in a small orchestra every sunday",
]


@pytest.fixture(scope="module")
def ctc_model_dir(model_args, tmp_path_factory):
    """A checkpoint folder of a seeded random model with a CTC branch (its partials)."""
    import torch
    from safetensors.torch import save_file

    from west.models.build import build_model

    path = tmp_path_factory.mktemp("ctc_model")
    args = dataclasses.replace(model_args, ctc_conf={"weight": 1.0})
    torch.manual_seed(0)
    save_file(build_model(args).trainable_state_dict(), str(path / "model.safetensors"))
    args.save(path)
    return path


@pytest.fixture(scope="module")
def server(ctc_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "server.log"
    yield from start_server(ctc_model_dir, log, "--max_streams", "3")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The sentences with 1-1.5 s pauses and a faint noise floor, as 24 kHz int16 PCM; and
    each sentence's (start, end) in seconds, where its samples are loud."""
    tmp = tmp_path_factory.mktemp("realtime")
    rng = np.random.default_rng(0)
    pieces, bounds, at = [np.zeros(int(0.8 * RATE), np.float32)], [], int(0.8 * RATE)
    for i, text in enumerate(ENGLISH):
        x, sr = sf.read(synthesize(text, tmp / f"s{i}.wav"), dtype="float32")
        x = soxr.resample(x, sr, RATE).astype(np.float32)
        loud = np.flatnonzero(np.abs(x) > 0.02 * np.abs(x).max())
        bounds.append(((at + loud[0]) / RATE, (at + loud[-1]) / RATE))
        gap = int(rng.uniform(1.0, 1.5) * RATE)
        pieces += [x, np.zeros(gap, np.float32)]
        at += len(x) + gap
    audio = np.concatenate(pieces)
    audio += rng.standard_normal(len(audio)).astype(np.float32) * 3e-4
    pcm = np.round(np.clip(audio, -1, 1) * 32767).astype("<i2")
    assert 50 < len(pcm) / RATE < 75
    return pcm, bounds


def b64(pcm: np.ndarray) -> str:
    return base64.b64encode(pcm.astype("<i2").tobytes()).decode()


def as_16k(pcm: np.ndarray, rate: int = RATE) -> np.ndarray:
    """The server's 16 kHz samples of `pcm` (as its streaming resampler makes them)."""
    x = pcm.astype(np.float32) / 32768
    return x if rate == 16000 else soxr.resample(x, rate, 16000, quality="HQ").astype(np.float32)


def offline(server, samples16: np.ndarray) -> str:
    """The HTTP endpoint's text for exactly these 16 kHz samples (a float WAV)."""
    data = io.BytesIO()
    sf.write(data, samples16, 16000, format="WAV", subtype="FLOAT")
    reply = requests.post(
        f"{server.url}/v1/audio/transcriptions",
        files={"file": ("span.wav", data.getvalue())},
        data={"model": "west"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["text"]


def ws_url(server, intent: str = "transcription") -> str:
    return f"ws://127.0.0.1:{server.port}/v1/realtime?intent={intent}"


class Reader(threading.Thread):
    """Collects the events a connection receives (`recv` returns raw JSON)."""

    def __init__(self, recv):
        super().__init__(daemon=True)
        self.recv, self.events, self.raw = recv, [], []

    def run(self):
        try:
            while True:
                raw = self.recv()
                self.raw.append(raw)
                self.events.append(json.loads(raw))
        except Exception:
            pass  # closed

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e["type"] == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.of(kind)) < count:
            if time.monotonic() > deadline:
                types = [e["type"] for e in self.events][-20:]
                raise TimeoutError(f"{count} {kind} not received in {timeout} s; last: {types}")
            time.sleep(0.02)
        return self.of(kind)


def next_event(ws, timeout: float = 30) -> dict:
    return json.loads(ws.recv(timeout))


def connect(server, **kwargs):
    """A plain websockets connection, past the two session.created events."""
    ws = websockets_sync.connect(ws_url(server, **kwargs), open_timeout=30)
    kinds = [next_event(ws)["type"], next_event(ws)["type"]]
    assert kinds == ["transcription_session.created", "session.created"]
    return ws


def send(ws, **event) -> None:
    ws.send(json.dumps(event))


# ---------------------------------------------------------------------------------------


def test_a_minute_streamed_with_the_openai_client(server, recording):
    pcm, bounds = recording
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with client.realtime.connect(extra_query={"intent": "transcription"}) as conn:
        reader = Reader(conn.recv_bytes)
        reader.start()
        created = reader.wait_for("transcription_session.created")[0]["session"]
        assert created["input_audio_format"] == "pcm16"  # 24 kHz, OpenAI's default
        assert created["turn_detection"]["silence_duration_ms"] == 500
        audio_input = {
            "format": {"type": "audio/pcm", "rate": RATE},
            "turn_detection": {"type": "server_vad", "threshold": 0.5},
        }
        conn.session.update(session={"type": "transcription", "audio": {"input": audio_input}})
        updated = reader.wait_for("session.updated")[0]["session"]["audio"]["input"]
        assert updated["format"] == {"type": "audio/pcm", "rate": RATE}
        for i in range(0, len(pcm), CHUNK):
            conn.input_audio_buffer.append(audio=b64(pcm[i : i + CHUNK]))
            time.sleep(PACE)
        completed = reader.wait_for(
            "conversation.item.input_audio_transcription.completed", len(bounds)
        )
        time.sleep(0.5)  # nothing more may come
    events = reader.events
    assert len(reader.of("conversation.item.input_audio_transcription.completed")) == len(bounds)
    assert not reader.of("error")
    assert all(e["event_id"].startswith("event_") for e in events)
    # The client's own models parse the standard events, extra `partial` field and all.
    parsed = {type(conn.parse_event(raw)).__name__ for raw in reader.raw}
    assert "ConversationItemInputAudioTranscriptionCompletedEvent" in parsed
    assert "ConversationItemInputAudioTranscriptionDeltaEvent" in parsed

    items = list(dict.fromkeys(e["item_id"] for e in events if "item_id" in e))
    assert len(items) == len(bounds)
    audio16 = as_16k(pcm)
    previous = None
    with_deltas = 0
    for item, (start, end), done in zip(items, bounds, completed):
        mine = [e for e in events if e.get("item_id") == item]
        kinds = [e["type"].rsplit(".", 1)[-1] for e in mine]
        assert kinds[0] == "speech_started"
        assert kinds[-3:] == ["speech_stopped", "committed", "completed"], kinds
        assert set(kinds[1:-3]) <= {"delta"}  # while the sentence is spoken
        deltas = [e for e in mine if e["type"].endswith(".delta")]
        with_deltas += bool(deltas)
        assert all(d["partial"] and d["content_index"] == 0 for d in deltas)
        started, stopped, committed = mine[0], mine[-3], mine[-2]
        # OpenAI's conventions: the item's audio, prefix padding and final silence included.
        assert started["audio_start_ms"] == pytest.approx((start - PREFIX) * 1000, abs=150)
        assert stopped["audio_end_ms"] == pytest.approx((end + SILENCE) * 1000, abs=200)
        assert committed["previous_item_id"] == previous
        previous = item
        assert done["item_id"] == item and done["content_index"] == 0
        a, b = started["audio_start_ms"] * 16, stopped["audio_end_ms"] * 16
        assert done["transcript"] and done["transcript"] == offline(server, audio16[a:b])
        assert done["usage"] == {"type": "duration", "seconds": (b - a) / 16000}
    assert with_deltas >= len(bounds) - 1, f"only {with_deltas} items had partials"
    completed_metric = (
        'west_realtime_events_total{type="conversation.item.input_audio_transcription.completed"}'
    )
    assert server.metric(completed_metric) >= len(bounds)
    assert server.metric('west_partials_total{outcome="decoded"}') > 0


def test_bad_events_get_errors_and_the_connection_stays_usable(server, recording):
    pcm, bounds = recording
    with connect(server) as ws:

        def error_for(message, code, param=None, event_id=None):
            ws.send(message)
            event = next_event(ws)
            assert event["type"] == "error", event
            error = event["error"]
            assert (error["code"], error["param"], error["event_id"]) == (code, param, event_id)
            assert error["type"] == "invalid_request_error" and error["message"]
            return error["message"]

        assert "JSON" in error_for("{not json", "invalid_json")
        assert "JSON" in error_for(b"\x00\x01", "invalid_event")  # a binary frame
        error_for("[1, 2]", "invalid_event", "type")
        message = error_for(
            json.dumps({"type": "response.create", "event_id": "evt_1"}),
            "unknown_event",
            "type",
            "evt_1",
        )
        assert "input_audio_buffer.append" in message  # what is understood
        append = {"type": "input_audio_buffer.append", "event_id": "evt_2"}
        error_for(json.dumps(dict(append, audio="%%%")), "invalid_audio", "audio", "evt_2")
        odd = base64.b64encode(b"\x01\x02\x03").decode()
        assert "odd" in error_for(
            json.dumps(dict(append, audio=odd)), "invalid_audio", "audio", "evt_2"
        )
        error_for(json.dumps(dict(append, audio=None)), "invalid_value", "audio", "evt_2")
        beta = {"type": "transcription_session.update"}
        error_for(
            json.dumps(dict(beta, session={"input_audio_format": "g711_ulaw"})),
            "unsupported_format",
            "session.input_audio_format",
        )
        for rate in (96000, 4000, "16000"):
            fmt = {"format": {"type": "audio/pcm", "rate": rate}}
            update = {
                "type": "session.update",
                "session": {"type": "transcription", "audio": {"input": fmt}},
            }
            assert "8000 to 48000" in error_for(
                json.dumps(update), "unsupported_sample_rate", "session.audio.input.format.rate"
            )
        error_for(
            json.dumps(dict(beta, session={"turn_detection": {"type": "semantic_vad"}})),
            "invalid_value",
            "session.turn_detection.type",
        )
        error_for(
            json.dumps({"type": "input_audio_buffer.commit"}), "input_audio_buffer_commit_empty"
        )

        # Still usable: 16 kHz audio, no turn detection, one commit for the whole sentence.
        session = {
            "input_audio_format": {"type": "audio/pcm", "rate": 16000},
            "turn_detection": None,
        }
        send(ws, **beta, session=session)
        updated = next_event(ws)
        assert updated["type"] == "transcription_session.updated"
        assert updated["session"]["input_audio_format"] == {"type": "audio/pcm", "rate": 16000}
        assert updated["session"]["turn_detection"] is None
        start, end = bounds[0]
        sentence = as_16k(pcm[int((start - 0.3) * RATE) : int((end + 0.3) * RATE)])
        sentence16 = np.round(sentence * 32767).astype("<i2")
        for i in range(0, len(sentence16), 1600):
            send(ws, type="input_audio_buffer.append", audio=b64(sentence16[i : i + 1600]))
        send(ws, type="input_audio_buffer.commit")
        events = []
        while not events or not events[-1]["type"].endswith(".completed"):
            events.append(next_event(ws))
        kinds = [e["type"] for e in events]
        assert "input_audio_buffer.speech_started" not in kinds  # no VAD: no speech events
        assert kinds[-2:] == [
            "input_audio_buffer.committed",
            "conversation.item.input_audio_transcription.completed",
        ]
        expected = offline(server, sentence16.astype(np.float32) / 32768)
        assert events[-1]["transcript"] == expected
        send(ws, type="input_audio_buffer.clear")
        assert next_event(ws)["type"] == "input_audio_buffer.cleared"
    assert server.metric('west_realtime_errors_total{code="invalid_audio"}') >= 2


def test_a_vanishing_client_is_freed_while_others_are_served(server, recording, speech_dir):
    pcm, bounds = recording
    # Stream A: half a sentence and more, then its socket is closed without a goodbye.
    a = connect(server)
    stop = int((bounds[1][0] + 1.0) * RATE)
    for i in range(0, stop, CHUNK):
        send(a, type="input_audio_buffer.append", audio=b64(pcm[i : i + CHUNK]))
    b = connect(server)
    reader = Reader(lambda: b.recv(60))
    reader.start()
    a.close_socket()
    # Stream B carries on, and HTTP requests are answered meanwhile.
    two = int((bounds[1][1] + 1.0) * RATE)
    http = {}
    thread = threading.Thread(target=lambda: http.update(text=offline(server, as_16k(pcm[:two]))))
    thread.start()
    for i in range(0, two, CHUNK):
        send(b, type="input_audio_buffer.append", audio=b64(pcm[i : i + CHUNK]))
    done = reader.wait_for("conversation.item.input_audio_transcription.completed", 2)
    thread.join(60)
    assert http["text"]
    b.close()
    audio16 = as_16k(pcm)
    starts = reader.of("input_audio_buffer.speech_started")
    stops = reader.of("input_audio_buffer.speech_stopped")
    for d, s, e in zip(done, starts, stops):
        assert d["transcript"] == offline(
            server, audio16[s["audio_start_ms"] * 16 : e["audio_end_ms"] * 16]
        )
    deadline = time.monotonic() + 10
    while server.metric("west_realtime_streams") > 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert server.metric("west_realtime_streams") == 0
    assert requests.get(f"{server.url}/health", timeout=10).ok
    assert "Traceback" not in server.log_tail(100_000)


def test_streams_beyond_max_streams_are_refused_and_intent_is_checked(server):
    with connect(server), connect(server), connect(server):  # --max_streams 3
        with websockets_sync.connect(ws_url(server), open_timeout=30) as extra:
            event = next_event(extra)
            assert (event["type"], event["error"]["code"]) == ("error", "server_busy")
            with pytest.raises(ConnectionClosed):
                extra.recv(10)
            assert extra.close_code == 1013
    with connect(server):  # room again
        pass
    with websockets_sync.connect(ws_url(server, "conversation"), open_timeout=30) as ws:
        event = next_event(ws)
        assert event["error"]["code"] == "invalid_intent"
        assert "intent=transcription" in event["error"]["message"]


def test_deltas_send_only_what_two_partials_agree_on():
    sent = 0
    delta, sent = stable_delta([], "the quick".split(), sent)
    assert (delta, sent) == ("", 0)  # nothing to agree with yet
    delta, sent = stable_delta("the quick".split(), "the quack brown".split(), sent)
    assert (delta, sent) == ("the", 1)
    delta, sent = stable_delta("the quack brown".split(), "the quack brown fox".split(), sent)
    assert (delta, sent) == (" quack brown", 3)
    delta, sent = stable_delta("the quack brown fox".split(), "a quack".split(), sent)
    assert (delta, sent) == ("", 3)  # a revision of what was sent: nothing more, no retraction
