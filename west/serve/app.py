"""west-serve's HTTP routes: OpenAI's transcription endpoint over a dynamic batcher.

Starlette (with uvicorn), not FastAPI: six routes and one multipart form need no
request models or generated docs, and Starlette is the part of FastAPI that does the
work, without pydantic in the request path. The errors follow OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, so OpenAI clients report them.

Routes:
  POST /v1/audio/transcriptions  multipart: file (required), model, language, prompt,
                                 response_format, temperature, timestamp_granularities[],
                                 hotwords (WeST's);
                                 other fields are ignored, as OpenAI clients expect
  GET  /v1/models                the one model served
  GET  /health                   {"status": "ok", ...} while the server answers
  GET  /metrics                  Prometheus text (west.serve.metrics)
  WS   /v1/realtime               live transcription, OpenAI's Realtime transcription
                                 protocol (?intent=transcription; west.serve.realtime)
  GET  /                         the demo page (static/index.html)

`prompt` is read as hotwords (names and terms to expect: "Okafor, Lisbon"; running text
gives its capitalised words and numbers; west.models.context.prompt_hotwords), as is WeST's
own `hotwords` field; they are decoded with a bonus in the search and, for a model trained
with context_conf, in the prompt, besides the server's --hotwords. The decoding is
deterministic, so `language` and `temperature` are checked and then have no effect
(`language` is echoed in verbose_json); any `model` name is accepted (clients send
`whisper-1`).
Uploads are read and decoded under limits (west.serve.uploads: every bad request is a
4xx), in a thread pool, outside the model's worker; the batcher takes the requests in turn
and refuses, with 503 and Retry-After, one that would wait longer than --max_wait_s
(west.serve.batcher). With --api_key, every route but /health needs the key
(west.serve.auth). A recording without speech gets an empty text (the Transcriber's
voice-activity check), never words made up from noise.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from west.models.context import prompt_hotwords, read_hotwords
from west.serve.auth import ApiKeys
from west.serve.batcher import Batcher, QueueFull
from west.serve.errors import ApiError
from west.serve.formats import FORMATS, render
from west.serve.metrics import Metrics
from west.serve.realtime import realtime_route
from west.serve.uploads import (
    check_fields,
    decode_upload,
    header_seconds,
    read_form,
    removed_after,
    save_upload,
)
from west.transcriber import Transcriber

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
GRANULARITIES = ("segment", "word")  # word: a model with a CTC branch only


@dataclasses.dataclass
class ServeSettings:
    """Limits and names of one server (west-serve's flags)."""

    model_name: str = "west"
    max_batch_size: int = 16
    max_wait_ms: float = 20.0
    max_arrival_wait_ms: float = 250.0  # the wait while other requests' uploads are read
    max_queue: int = 256  # windows queued; also requests in flight (uploading or waiting)
    max_upload_mb: float = 50.0  # the whole request body
    max_audio_seconds: float = 7200.0  # one request's recording
    max_wait_s: float = 30.0  # a new request's expected wait for others' audio; 0: no limit
    body_timeout_s: float = 30.0  # a body's time, plus 1 s per 16 KiB (west.serve.uploads)
    api_keys: tuple[str, ...] = ()  # none: no authentication (west.serve.auth)
    max_streams: int = 64  # realtime WebSocket streams open at once
    partial_interval_ms: float = 320.0  # a stream's partial text every this much audio


def create_app(transcriber: Transcriber, settings: ServeSettings | None = None) -> Starlette:
    """The ASGI app serving `transcriber`; its decoding worker runs while the app does."""
    settings = settings or ServeSettings()
    metrics = Metrics()
    batcher = Batcher(
        transcriber,
        settings.max_batch_size,
        settings.max_wait_ms,
        settings.max_queue,
        metrics,
        settings.max_arrival_wait_ms,
    )
    created = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher.start()
        logger.info("serving %s (%r)", settings.model_name, transcriber)
        try:
            yield
        finally:
            # uvicorn gets here after the requests in flight are answered (SIGTERM included).
            batcher.close()
            logger.info("decoding worker stopped")

    async def transcriptions(request: Request) -> Response:
        start = time.perf_counter()
        if metrics.in_flight >= settings.max_queue:
            metrics.rejected(503, "server_busy")
            return ApiError(
                503,
                f"server busy: {metrics.in_flight} requests in flight (at most "
                f"{settings.max_queue}); retry later",
                "server_busy",
                headers={"Retry-After": str(_drain_seconds(batcher))},
            ).response()
        metrics.request_started()
        status, error = 200, None
        try:
            with batcher.arriving():  # until its windows are queued (or it fails)
                job, form = await _admit(request)
            return await _answer(request, job, form)
        except ApiError as e:
            status, error = e.status, e.code
            return e.response()
        except ClientDisconnect:
            status, error = 499, "client_disconnected"  # nginx's code: no one reads it
            return Response(status_code=499)
        except Exception:
            logger.exception("transcription request failed")
            status, error = 500, "internal_error"
            return ApiError(500, "internal error; see the server's log", error).response()
        finally:
            metrics.request_done(status, time.perf_counter() - start, error)

    async def _admit(request: Request):
        """Read and check the request, decode its upload, queue its windows: (Job, form)."""
        form = await read_form(request, settings.max_upload_mb, settings.body_timeout_s)
        try:
            upload = check_fields(form)
            response_format = str(form.get("response_format") or "json")
            if response_format not in FORMATS:
                raise ApiError(
                    400,
                    f"response_format {response_format!r}: expected one of {', '.join(FORMATS)}",
                    "invalid_value",
                    "response_format",
                )
            _check_options(form, transcriber)
            hotwords = _hotwords(form, transcriber)
            name = upload.filename or "file"
            path = await run_in_threadpool(save_upload, upload)
        finally:
            await form.close()  # the spooled upload: its copy is what is read
        limit = settings.max_audio_seconds
        try:
            with removed_after(path):
                seconds = await run_in_threadpool(header_seconds, path, name, limit)
                # Admitted or refused before decoding, from the header's length (an upper
                # bound of its speech): an overload is answered at once, and the requests
                # behind see this one's audio ahead of them while it is decoded.
                job = batcher.reserve(seconds, settings.max_wait_s or None)
                try:
                    windows, duration = await run_in_threadpool(
                        decode_upload, transcriber, path, name, limit
                    )
                    # Word times for word granularity, and for subtitles cut at words.
                    words = transcriber.has_word_timestamps and (
                        _wants_words(form) or response_format in ("srt", "vtt")
                    )
                    job = batcher.submit_windows(
                        windows, duration, words, job=job, hotwords=hotwords
                    )
                except BaseException:
                    batcher.release(job)
                    raise
        except QueueFull as e:
            raise ApiError(
                503, str(e), "server_busy", headers={"Retry-After": str(e.retry_after)}
            ) from e
        return job, form

    async def _answer(request: Request, job, form) -> Response:
        """Wait for the job's windows to be decoded (or its client to leave); render it."""
        result = asyncio.wrap_future(job.future)
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if not result.done():
            batcher.cancel(job)
            result.cancel()
            raise ClientDisconnect()
        job = result.result()
        language = form.get("language")
        body, media_type = render(
            str(form.get("response_format") or "json"),
            job.text,
            job.segments,
            job.duration,
            str(language) if language else None,
            words=_wants_words(form),
        )
        return Response(body, media_type=media_type)

    async def models(request: Request) -> Response:
        model = {"id": settings.model_name, "object": "model", "created": created}
        return JSONResponse({"object": "list", "data": [dict(model, owned_by="west")]})

    async def health(request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "model": settings.model_name,
                "queue_windows": metrics.queue_windows,
                "queue_seconds": round(metrics.queue_seconds, 2),
                "throughput": round(metrics.throughput, 3),
            }
        )

    async def metrics_text(request: Request) -> Response:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    async def index(request: Request) -> Response:
        page = STATIC / "index.html"
        if not page.is_file():
            raise HTTPException(404, "no demo page installed (west/serve/static/index.html)")
        return FileResponse(page, media_type="text/html")

    async def http_error(request: Request, exc: HTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, f"{request.url.path}: {exc.detail}", code).response()

    return Starlette(
        middleware=[Middleware(ApiKeys, keys=settings.api_keys, page=STATIC / "index.html")],
        routes=[
            Route("/v1/audio/transcriptions", transcriptions, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_text, methods=["GET"]),
            Route("/", index, methods=["GET"]),
            realtime_route(batcher, metrics, settings),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )


def _check_options(form, transcriber: Transcriber | None = None) -> None:
    """OpenAI's optional fields that WeST checks but cannot honour otherwise; word
    timestamps only from a `transcriber` whose model has a CTC branch."""
    temperature = form.get("temperature")
    if temperature not in (None, ""):
        try:
            ok = 0.0 <= float(temperature) <= 1.0
        except ValueError:
            ok = False
        if not ok:
            raise ApiError(
                400,
                f"temperature {temperature!r}: expected a number from 0 to 1",
                "invalid_value",
                "temperature",
            )
    for key in ("timestamp_granularities[]", "timestamp_granularities"):
        for value in form.getlist(key):
            if value not in GRANULARITIES:
                raise ApiError(
                    400,
                    f"{key} {value!r}: expected one of {', '.join(GRANULARITIES)}",
                    "invalid_value",
                    key,
                )
            if value == "word" and transcriber is not None and not transcriber.has_word_timestamps:
                raise ApiError(
                    400,
                    f"{key} {value!r}: this model has no CTC branch, so it has only segment "
                    "times; ask for timestamp_granularities[]=segment",
                    "invalid_value",
                    key,
                )
    if str(form.get("stream", "false")).lower() == "true":
        raise ApiError(
            400, "streaming is not supported; send stream=false", "invalid_value", "stream"
        )


def _hotwords(form, transcriber: Transcriber) -> list[str]:
    """The request's hotwords: OpenAI's `prompt` (west.models.context.prompt_hotwords) and
    WeST's `hotwords` fields (each a word or phrase, or several comma-separated); a 400
    for a list the model cannot take."""
    words = prompt_hotwords(str(form.get("prompt") or ""))
    for value in form.getlist("hotwords") + form.getlist("hotwords[]"):
        words += read_hotwords(str(value).split(","))
    words = list(dict.fromkeys(words))
    if len(words) > MAX_REQUEST_HOTWORDS:
        raise ApiError(
            400,
            f"{len(words)} hotwords: at most {MAX_REQUEST_HOTWORDS} a request",
            "invalid_value",
            "hotwords",
        )
    try:
        transcriber.check_hotwords(words)
    except ValueError as e:
        raise ApiError(400, str(e), "invalid_value", "prompt") from None
    return words


MAX_REQUEST_HOTWORDS = 5000


def _wants_words(form) -> bool:
    """Whether the request asks for word timestamps (verbose_json's `words`)."""
    keys = ("timestamp_granularities[]", "timestamp_granularities")
    return any(value == "word" for key in keys for value in form.getlist(key))


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the body has been read: only disconnects come)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _drain_seconds(batcher: Batcher) -> int:
    """Seconds for the queue to drain at the measured throughput (at least 1)."""
    rate = batcher.throughput
    return max(1, math.ceil(batcher.queued_seconds / rate)) if rate else 1
