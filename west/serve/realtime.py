"""Live transcription over a WebSocket: OpenAI's Realtime transcription protocol, served by
west.streaming.Stream on the server's dynamic batcher.

    ws://HOST:PORT/v1/realtime?intent=transcription

The server speaks first: `transcription_session.created` (the beta API's event) and
`session.created` (the GA API's), each with the session's settings in that API's shape.
The client events understood:

  transcription_session.update / session.update   settings, in either API's shape:
      beta {"input_audio_format": "pcm16" | {"type": "audio/pcm", "rate": R},
            "input_audio_transcription": {...},
            "turn_detection": {"type": "server_vad", "threshold", "prefix_padding_ms",
                               "silence_duration_ms"} | null}
      GA   {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm",
            "rate": R}, "transcription": {...}, "turn_detection": {...} | null}}}
      answered by transcription_session.updated / session.updated (the full settings).
      "pcm16" is 24 kHz, OpenAI's rate; any rate R from 8 to 48 kHz is accepted.
      Transcription model and language are echoed, without effect (as over HTTP); its
      prompt is read as hotwords, as over HTTP, and so is WeST's own `hotwords` list.
  input_audio_buffer.append  {"audio": base64 little-endian 16-bit mono PCM at the rate}
  input_audio_buffer.commit  end the current utterance now (with turn_detection null, the
                             only way one ends)
  input_audio_buffer.clear   drop the current utterance's audio

The server's events, each with an `event_id` and `type`:

  input_audio_buffer.speech_started  {audio_start_ms, item_id}: where the utterance's
      audio starts (the VAD's onset less the prefix padding, as OpenAI counts)
  input_audio_buffer.speech_stopped  {audio_end_ms, item_id}: where its audio ends
      (after the silence that ended it, as OpenAI counts)
  input_audio_buffer.committed       {item_id, previous_item_id}
  conversation.item.input_audio_transcription.delta
      {item_id, content_index: 0, delta, partial}
  conversation.item.input_audio_transcription.completed
      {item_id, content_index: 0, transcript, usage: {type: "duration", seconds}}
  conversation.item.input_audio_transcription.failed  {item_id, content_index: 0, error}
  input_audio_buffer.cleared
  error {error: {type, code, message, param, event_id}}: the client event's mistake; the
      connection stays open (except when the server is full: code server_busy, then
      closed with 1013)

Partials: OpenAI's deltas are append-only, but a partial (the CTC branch's best path of the
utterance so far, re-decoded every 0.32 s) may revise its last words. So a delta carries
only the words that two successive partials agree on, beyond those already sent (words
that have survived one more second of audio rarely change); the whole current partial is
in the extra field `partial`, which OpenAI clients ignore and a live display shows. The
deltas are a preview: `completed.transcript`, the full decoding of the utterance, is what
counts, and it may differ from the deltas joined. A model without a CTC branch sends no
deltas.

Every stream's final texts are decoded by the batcher's worker in the same batches as
HTTP uploads' windows, and its partials in batches of partials (west.serve.batcher). A
client that goes away mid-stream has its pending decodings cancelled.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import concurrent.futures
import dataclasses
import json
import logging
import secrets

import numpy as np
from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from west.models.context import prompt_hotwords, read_hotwords
from west.serve.batcher import Batcher
from west.serve.metrics import Metrics
from west.streaming import (
    Committed,
    Final,
    Partial,
    SpeechStarted,
    SpeechStopped,
    Stream,
)

logger = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8000, 48000
DEFAULT_RATE = 24000  # OpenAI's pcm16
CLIENT_EVENTS = (
    "transcription_session.update",
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
)
_MISSING = object()


class ProtocolError(Exception):
    """A client event the server cannot act on: sent back as an `error` event."""

    def __init__(self, message: str, code: str, param: str | None = None):
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


@dataclasses.dataclass
class SessionConfig:
    """A session's settings (OpenAI's server_vad defaults)."""

    rate: int = DEFAULT_RATE
    turn_detection: bool = True
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    transcription: dict = dataclasses.field(default_factory=dict)
    hotwords: list[str] = dataclasses.field(default_factory=list)  # its prompt's and own

    def _turn_detection(self) -> dict | None:
        if not self.turn_detection:
            return None
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }

    def beta(self, session_id: str) -> dict:
        """The settings as the beta API's transcription session shows them."""
        rate = self.rate
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "input_audio_format": "pcm16" if rate == DEFAULT_RATE else _pcm(rate),
            "input_audio_transcription": self.transcription or None,
            "turn_detection": self._turn_detection(),
            "input_audio_noise_reduction": None,
            "modalities": ["text"],
            "include": [],
        }

    def ga(self, session_id: str) -> dict:
        """The settings as the GA API's transcription session shows them."""
        return {
            "type": "transcription",
            "id": session_id,
            "object": "realtime.transcription_session",
            "audio": {
                "input": {
                    "format": _pcm(self.rate),
                    "transcription": self.transcription or None,
                    "turn_detection": self._turn_detection(),
                    "noise_reduction": None,
                }
            },
            "include": [],
        }


def _pcm(rate: int) -> dict:
    return {"type": "audio/pcm", "rate": rate}


def parse_update(session, config: SessionConfig) -> SessionConfig:
    """`config` with a session update (beta or GA shape) applied; ProtocolError for a
    setting that cannot be honoured, nothing applied then."""
    if not isinstance(session, dict):
        raise ProtocolError("`session` must be an object of settings", "invalid_value", "session")
    new = dataclasses.replace(config, transcription=dict(config.transcription))
    if "audio" in session or session.get("type") is not None:  # GA
        if session.get("type", "transcription") != "transcription":
            raise ProtocolError(
                f"session.type {session.get('type')!r}: only transcription sessions are served "
                '(expected "transcription")',
                "invalid_value",
                "session.type",
            )
        where = "session.audio.input"
        audio = _object(session.get("audio", {}), "session.audio")
        inp = _object(audio.get("input", {}), where)
        fmt, transcription = inp.get("format", _MISSING), inp.get("transcription", _MISSING)
        turn = inp.get("turn_detection", _MISSING)
        names = (f"{where}.format", f"{where}.transcription", f"{where}.turn_detection")
    else:  # beta
        fmt = session.get("input_audio_format", _MISSING)
        transcription = session.get("input_audio_transcription", _MISSING)
        turn = session.get("turn_detection", _MISSING)
        names = (
            "session.input_audio_format",
            "session.input_audio_transcription",
            "session.turn_detection",
        )
    if fmt is not _MISSING:
        new.rate = parse_format(fmt, names[0])
    if transcription is not _MISSING:
        transcription = _object(transcription or {}, names[1])
        new.transcription = {
            k: v
            for k, v in transcription.items()
            if k in ("model", "language", "prompt", "hotwords")
        }
        new.hotwords = session_hotwords(new.transcription, names[1])
    if turn is not _MISSING:
        _parse_turn_detection(turn, new, names[2])
    return new


def session_hotwords(transcription: dict, param: str) -> list[str]:
    """The hotwords of a session's transcription settings: its `prompt` read as OpenAI's
    HTTP `prompt` is (west.models.context.prompt_hotwords), and WeST's `hotwords` (a list
    of strings); ProtocolError for other types."""
    prompt = transcription.get("prompt") or ""
    if not isinstance(prompt, str):
        raise ProtocolError(f"{param}.prompt must be a string", "invalid_value", f"{param}.prompt")
    own = transcription.get("hotwords") or []
    if not isinstance(own, list) or not all(isinstance(w, str) for w in own):
        raise ProtocolError(
            f"{param}.hotwords must be a list of strings", "invalid_value", f"{param}.hotwords"
        )
    return list(dict.fromkeys(prompt_hotwords(prompt) + read_hotwords(own)))


def _object(value, param: str) -> dict:
    if not isinstance(value, dict):
        raise ProtocolError(f"{param} must be an object", "invalid_value", param)
    return value


def parse_format(fmt, param: str) -> int:
    """An input audio format -> its sample rate; only 16-bit PCM is accepted."""
    pcm = '16-bit PCM: "pcm16" (24 kHz) or {"type": "audio/pcm", "rate": 8000-48000}'
    if fmt == "pcm16":
        return DEFAULT_RATE
    if not isinstance(fmt, dict) or fmt.get("type", "audio/pcm") not in ("audio/pcm", "pcm16"):
        shown = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise ProtocolError(
            f"input audio format {shown!r} is not supported; expected {pcm}",
            "unsupported_format",
            param,
        )
    rate = fmt.get("rate", DEFAULT_RATE)
    if isinstance(rate, bool) or not isinstance(rate, int) or not MIN_RATE <= rate <= MAX_RATE:
        raise ProtocolError(
            f"sample rate {rate!r}: expected an integer from {MIN_RATE} to {MAX_RATE} (Hz)",
            "unsupported_sample_rate",
            f"{param}.rate",
        )
    return rate


def _parse_turn_detection(turn, config: SessionConfig, param: str) -> None:
    if turn is None:
        config.turn_detection = False
        return
    turn = _object(turn, param)
    kind = turn.get("type", "server_vad")
    if kind != "server_vad":
        raise ProtocolError(
            f'turn_detection type {kind!r} is not supported; expected "server_vad" or null',
            "invalid_value",
            f"{param}.type",
        )
    checks = (
        ("threshold", lambda v: 0 < v < 1, "a number between 0 and 1"),
        ("prefix_padding_ms", lambda v: 0 <= v <= 10000, "milliseconds from 0 to 10000"),
        ("silence_duration_ms", lambda v: 0 <= v <= 10000, "milliseconds from 0 to 10000"),
    )
    for key, ok, expected in checks:
        value = turn.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            raise ProtocolError(
                f"{param}.{key} {value!r}: expected {expected}", "invalid_value", f"{param}.{key}"
            )
        setattr(config, key, value)
    config.turn_detection = True


def stable_delta(previous: list[str], words: list[str], sent: int) -> tuple[str, int]:
    """The append-only delta for a new partial's `words`: the words it shares with the
    `previous` partial (their common prefix) beyond the `sent` already sent; and the new
    count sent."""
    agreed = 0
    for a, b in zip(previous, words):
        if a != b:
            break
        agreed += 1
    if agreed <= sent:
        return "", sent
    return (" " if sent else "") + " ".join(words[sent:agreed]), agreed


def pcm16(data: str) -> np.ndarray:
    """Base64 little-endian 16-bit PCM -> float32 samples in [-1, 1)."""
    if not isinstance(data, str):
        raise ProtocolError(
            "input_audio_buffer.append needs `audio`: a base64 string of 16-bit PCM",
            "invalid_value",
            "audio",
        )
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ProtocolError(
            f"`audio` is not valid base64 ({e}); expected base64 of 16-bit little-endian PCM",
            "invalid_audio",
            "audio",
        ) from None
    if len(raw) % 2:
        raise ProtocolError(
            f"`audio` holds {len(raw)} bytes, an odd number; expected 16-bit samples "
            "(2 bytes each, little-endian, mono)",
            "invalid_audio",
            "audio",
        )
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


class _Gone(Exception):
    """The client is gone (a send failed)."""


class RealtimeSession:
    """One WebSocket connection: its settings, its Stream and its items."""

    def __init__(self, websocket: WebSocket, batcher: Batcher, metrics: Metrics, settings):
        self.ws, self.batcher, self.metrics = websocket, batcher, metrics
        self.id = "sess_" + secrets.token_hex(10)
        self.config = SessionConfig(transcription={"model": settings.model_name})
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._items: dict[int, str] = {}
        self._last_committed: str | None = None
        self._partials: dict[int, tuple[list[str], int]] = {}  # item: (last words, sent)
        has_ctc = batcher.transcriber.model.ctc is not None
        self.stream = Stream(
            decode=self._decode,
            partial=batcher.submit_partial if has_ctc else False,
            max_utterance=batcher.transcriber.max_window_seconds,
            partial_interval=getattr(settings, "partial_interval_ms", 320.0) / 1000,
            on_ready=self._on_ready,
            **self._stream_settings(),
        )

    def _on_ready(self) -> None:
        """A decoding finished (on the batcher's thread): wake the pusher."""
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:
            pass  # the event loop is closed: the server is gone

    def _stream_settings(self) -> dict:
        c = self.config
        return dict(
            threshold=c.threshold,
            min_silence=c.silence_duration_ms / 1000,
            prefix_padding=c.prefix_padding_ms / 1000,
            turn_detection=c.turn_detection,
        )

    def _decode(self, audio: np.ndarray) -> concurrent.futures.Future:
        """Queue an utterance on the batcher: a Future of its text (cancelling it cancels
        the job). QueueFull propagates: the Stream fails that utterance."""
        job = self.batcher.submit(audio, hotwords=self.config.hotwords)
        text: concurrent.futures.Future = concurrent.futures.Future()

        def done(f: concurrent.futures.Future) -> None:
            try:
                if f.exception() is not None:
                    text.set_exception(f.exception())
                else:
                    text.set_result(f.result().text)
            except concurrent.futures.InvalidStateError:
                pass  # cancelled meanwhile

        text.add_done_callback(lambda f: f.cancelled() and self.batcher.cancel(job))
        job.future.add_done_callback(done)
        return text

    # ---- the connection ------------------------------------------------------------

    async def run(self) -> None:
        pusher = asyncio.ensure_future(self._push())
        try:
            await self._send({"type": "transcription_session.created", "session": self._beta()})
            await self._send({"type": "session.created", "session": self.config.ga(self.id)})
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self._handle(message)
        except (_Gone, WebSocketDisconnect):
            pass
        finally:
            pusher.cancel()
            self.stream.cancel()

    def _beta(self) -> dict:
        return self.config.beta(self.id)

    async def _push(self) -> None:
        """Send the events whose decoding finished between client events."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                async with self._send_lock:
                    await self._send_events(self.stream.poll())
        except _Gone:
            pass
        except Exception:  # never silently: the stream would stop receiving its texts
            logger.exception("sending a realtime stream's decoded events failed")

    async def _handle(self, message: dict) -> None:
        text = message.get("text")
        if text is None:
            await self._error(
                "binary frames are not understood; expected text frames of JSON events",
                "invalid_event",
            )
            return
        try:
            event = json.loads(text)
        except json.JSONDecodeError as e:
            await self._error(
                f"message is not valid JSON ({e}); expected a JSON event", "invalid_json"
            )
            return
        client_id = event.get("event_id") if isinstance(event, dict) else None
        try:
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise ProtocolError(
                    "expected a JSON object with a string `type`", "invalid_event", "type"
                )
            await self._dispatch(event)
        except ProtocolError as e:
            await self._error(e.message, e.code, e.param, client_id)
        except (_Gone, WebSocketDisconnect):
            raise
        except Exception:
            logger.exception("realtime event %s failed", event.get("type"))
            await self._error(
                "internal error; see the server's log",
                "internal_error",
                None,
                client_id,
                "server_error",
            )

    async def _dispatch(self, event: dict) -> None:
        kind = event["type"]
        if kind in ("transcription_session.update", "session.update"):
            await self._update(kind, event.get("session"))
        elif kind == "input_audio_buffer.append":
            samples = pcm16(event.get("audio"))
            async with self._send_lock:
                events = await run_in_threadpool(self.stream.feed, samples, self.config.rate)
                await self._send_events(events)
        elif kind == "input_audio_buffer.commit":
            if not self.stream.in_utterance:
                raise ProtocolError(
                    "nothing to commit: no speech since the last commit"
                    if self.config.turn_detection
                    else "nothing to commit: no audio appended since the last commit",
                    "input_audio_buffer_commit_empty",
                )
            async with self._send_lock:
                await self._send_events(await run_in_threadpool(self.stream.flush))
        elif kind == "input_audio_buffer.clear":
            self.stream.clear()
            await self._send({"type": "input_audio_buffer.cleared"})
        else:
            raise ProtocolError(
                f"unknown or unsupported event type {kind!r}; expected one of "
                + ", ".join(CLIENT_EVENTS),
                "unknown_event",
                "type",
            )

    async def _update(self, kind: str, session) -> None:
        new = parse_update(session, self.config)
        try:
            self.batcher.transcriber.check_hotwords(new.hotwords)
        except ValueError as e:
            raise ProtocolError(str(e), "invalid_value", "session.prompt") from None
        old, self.config = self.config, new
        async with self._send_lock:
            if new.turn_detection != old.turn_detection:
                await self._send_events(await run_in_threadpool(self.stream.flush))
                self.stream.turn_detection = new.turn_detection
            s = self._stream_settings()
            self.stream.configure(s["threshold"], s["min_silence"], s["prefix_padding"])
            if kind == "session.update":
                await self._send({"type": "session.updated", "session": new.ga(self.id)})
            else:
                await self._send({"type": "transcription_session.updated", "session": self._beta()})

    # ---- events out ----------------------------------------------------------------

    def _item(self, index: int) -> str:
        if index not in self._items:
            self._items[index] = "item_" + secrets.token_hex(10)
        return self._items[index]

    async def _send_events(self, events) -> None:
        for e in events:
            item = self._item(e.index)
            if isinstance(e, SpeechStarted):
                ms = round(e.audio_start * 1000)
                await self._send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": ms,
                        "item_id": item,
                    }
                )
            elif isinstance(e, SpeechStopped):
                ms = round(e.audio_end * 1000)
                await self._send(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": ms,
                        "item_id": item,
                    }
                )
            elif isinstance(e, Committed):
                previous, self._last_committed = self._last_committed, item
                await self._send(
                    {
                        "type": "input_audio_buffer.committed",
                        "item_id": item,
                        "previous_item_id": previous,
                    }
                )
            elif isinstance(e, Partial):
                words = e.text.split()
                last, sent = self._partials.get(e.index, ([], 0))
                delta, sent = stable_delta(last, words, sent)
                self._partials[e.index] = (words, sent)
                await self._send(
                    {
                        "type": "conversation.item.input_audio_transcription.delta",
                        "item_id": item,
                        "content_index": 0,
                        "delta": delta,
                        "partial": e.text,
                    }
                )
            elif isinstance(e, Final):
                self._partials.pop(e.index, None)
                self._items.pop(e.index, None)
                if e.error is not None:
                    await self._send(
                        {
                            "type": "conversation.item.input_audio_transcription.failed",
                            "item_id": item,
                            "content_index": 0,
                            "error": {
                                "type": "server_error",
                                "code": "transcription_failed",
                                "message": f"transcription failed: {e.error}",
                                "param": None,
                            },
                        }
                    )
                    continue
                await self._send(
                    {
                        "type": "conversation.item.input_audio_transcription.completed",
                        "item_id": item,
                        "content_index": 0,
                        "transcript": e.text,
                        "usage": {"type": "duration", "seconds": round(e.end - e.start, 3)},
                    }
                )

    async def _error(
        self,
        message: str,
        code: str,
        param: str | None = None,
        client_event_id: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        error = {
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": client_event_id if isinstance(client_event_id, str) else None,
        }
        await self._send({"type": "error", "error": error})

    async def _send(self, event: dict) -> None:
        event = {"type": event["type"], "event_id": "event_" + secrets.token_hex(10), **event}
        try:
            await self.ws.send_text(json.dumps(event))
        except Exception as e:  # closed by the client, or the connection broke
            raise _Gone() from e
        code = event["error"]["code"] if event["type"] == "error" else None
        self.metrics.stream_event(event["type"], code)


def realtime_route(batcher: Batcher, metrics: Metrics, settings) -> WebSocketRoute:
    """The /v1/realtime WebSocket route; `settings` (west.serve.app.ServeSettings) gives
    `model_name` and `max_streams`."""

    async def realtime(websocket: WebSocket) -> None:
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol="realtime" if "realtime" in offered else None)
        intent = websocket.query_params.get("intent", "transcription")
        refusal = None
        if intent != "transcription":
            refusal = (
                f"intent={intent!r}: only transcription sessions are served; connect to "
                "/v1/realtime?intent=transcription",
                "invalid_intent",
                1008,
            )
        elif metrics.streams_open >= getattr(settings, "max_streams", 64):
            refusal = (
                f"server busy: {metrics.streams_open} streams open (at most "
                f"{settings.max_streams}, west-serve's --max_streams); retry later",
                "server_busy",
                1013,
            )
        if refusal is not None:
            message, code, close_code = refusal
            error = {"type": "invalid_request_error", "code": code, "message": message}
            error.update(param=None, event_id=None)
            event = {"type": "error", "event_id": "event_" + secrets.token_hex(10), "error": error}
            try:
                await websocket.send_text(json.dumps(event))
                await websocket.close(code=close_code)
            except Exception:
                pass
            metrics.stream_event("error", code)
            return
        metrics.stream_opened()
        try:
            await RealtimeSession(websocket, batcher, metrics, settings).run()
        finally:
            metrics.stream_closed()
            try:
                await websocket.close()
            except Exception:
                pass  # already closed

    return WebSocketRoute("/v1/realtime", realtime)
