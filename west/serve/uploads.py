"""An upload's way in: the request body read under limits, the multipart form checked,
the recording decoded in chunks into windows. Every failure is an ApiError (a 4xx in
OpenAI's error shape) that says what was wrong; none is a 500.

Limits, in the order they apply:
  - Content-Type must be multipart/form-data (400), before a byte of the body is read.
  - A Content-Length over `max_upload_mb` is answered 413 at once, the body unread, and the
    connection closed; a body without one (chunked) is counted as it comes, and answered
    413 the moment it passes the limit.
  - The body must keep coming: it may take `body_timeout_s` plus 1 s per 16 KiB received
    (so a slow link uploads anything, a client trickling bytes to hold a connection does
    not); past that, 408 and the connection closed.
  - The form: exactly one `file` part, a file; the other fields OpenAI defines at most once
    each, as text (`timestamp_granularities[]` may repeat); a broken, truncated or garbage
    body is a 400 naming what the parser found.
  - The recording: its length read from the container's header, before decoding, against
    `max_audio_seconds` (400 audio_too_long); then decoded in chunks (west.data.audio.
    stream_audio) and cut into windows as they come (Transcriber.stream_windows), so a long
    file never sits whole in memory; a header that claims less than the data holds is
    caught by the same limit as decoding goes on, one that claims more (a truncated file)
    is a 400 saying how much was read.
The upload itself is spooled to disk by the form parser (past 1 MiB), never held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from west.data.audio import SAMPLE_RATE, AudioError, AudioTooLong, audio_info, stream_audio
from west.serve.errors import ApiError
from west.transcriber import Transcriber, Window

BODY_MIN_RATE = 16 * 1024  # bytes a second a body must average, past body_timeout_s
# OpenAI's text fields: at most one each (a list field may repeat).
TEXT_FIELDS = ("model", "language", "prompt", "response_format", "temperature", "stream")
LIST_FIELDS = ("timestamp_granularities[]", "timestamp_granularities", "hotwords", "hotwords[]")
# Sent with an answer given before the body was read: the connection cannot be reused.
CLOSE = {"Connection": "close"}
_NO_SAMPLES = np.zeros(0, np.float32)  # not a view: a view would keep its base alive


class _BodyLimit(Exception):
    def __init__(self, error: ApiError):
        self.error = error


async def read_form(request: Request, max_upload_mb: float, body_timeout_s: float) -> FormData:
    """The request's multipart form, read under the limits of the module docstring."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(
            400,
            f"Content-Type {content_type or '(none)'}: expected multipart/form-data "
            "with the recording in a `file` field",
            "invalid_request",
        )
    limit = int(max_upload_mb * 2**20)
    too_large = ApiError(
        413,
        f"upload larger than {max_upload_mb:g} MB (the server's --max_upload_mb)",
        "file_too_large",
        "file",
        headers=CLOSE,
    )
    length = request.headers.get("content-length", "")
    if length.strip().isdigit() and int(length) > limit:
        raise too_large
    received, start = 0, time.monotonic()

    async def receive():
        nonlocal received
        left = start + body_timeout_s + received / BODY_MIN_RATE - time.monotonic()
        try:
            message = await asyncio.wait_for(request.receive(), max(left, 0.001))
        except TimeoutError:
            raise _BodyLimit(
                ApiError(
                    408,
                    f"request body too slow: {received} bytes in {time.monotonic() - start:.0f}"
                    f" s (the server allows {body_timeout_s:g} s plus 1 s per "
                    f"{BODY_MIN_RATE // 1024} KiB: --body_timeout_s)",
                    "request_timeout",
                    headers=CLOSE,
                )
            ) from None
        received += len(message.get("body", b""))
        if received > limit:
            raise _BodyLimit(too_large)
        return message

    try:
        return await Request(request.scope, receive).form(max_files=4, max_fields=100)
    except _BodyLimit as e:
        raise e.error from None
    except (HTTPException, MultiPartException) as e:
        detail = getattr(e, "detail", None) or getattr(e, "message", str(e))
        raise ApiError(400, f"malformed multipart form: {detail}", "invalid_form") from e
    except (ValueError, KeyError, IndexError, UnicodeError, AssertionError) as e:
        # python-multipart's own errors on garbage (its FormParserError is a ValueError)
        raise ApiError(
            400, f"malformed multipart form: {type(e).__name__}: {e}", "invalid_form"
        ) from e


def check_fields(form: FormData) -> UploadFile:
    """The form's one `file` upload; ApiError 400 for a missing, repeated or mistyped field."""
    counts: dict[str, int] = {}
    for key, value in form.multi_items():
        counts[key] = counts.get(key, 0) + 1
        if key in TEXT_FIELDS and not isinstance(value, str):
            raise ApiError(
                400,
                f"`{key}` is a file part; expected a text field",
                "invalid_type",
                key,
            )
        if key in LIST_FIELDS and not isinstance(value, str):
            raise ApiError(
                400, f"`{key}` is a file part; expected text values", "invalid_type", key
            )
    for key in ("file", *TEXT_FIELDS):
        if counts.get(key, 0) > 1:
            raise ApiError(
                400,
                f"`{key}` sent {counts[key]} times; expected it once",
                "duplicate_field",
                key,
            )
    upload = form.get("file")
    if upload is None:
        raise ApiError(
            400,
            "no `file` in the form; expected a multipart/form-data upload with the "
            "recording in a `file` field",
            "missing_file",
            "file",
        )
    if not isinstance(upload, UploadFile):
        raise ApiError(
            400,
            "`file` is a text field; expected the recording as a file part "
            '(Content-Disposition: form-data; name="file"; filename="...")',
            "invalid_type",
            "file",
        )
    return upload


def save_upload(upload: UploadFile) -> Path:
    """Copy the (spooled) upload to a temporary file with the upload's suffix, which the
    audio readers go by; the caller removes it."""
    name = upload.filename or "file"
    suffix = Path(name).suffix if len(Path(name).suffix) <= 10 else ""
    fd, path = tempfile.mkstemp(prefix="west-upload-", suffix=suffix)
    with os.fdopen(fd, "wb") as out:
        upload.file.seek(0)
        shutil.copyfileobj(upload.file, out, 1 << 20)
    return Path(path)


def header_seconds(path: Path, name: str, max_audio_seconds: float) -> float:
    """A saved upload's length as its header gives it, read without decoding; ApiError 400
    naming `name` for an empty or unreadable file, or one past `max_audio_seconds`."""
    if path.stat().st_size == 0:
        raise ApiError(
            400,
            f"{name}: empty file (0 bytes); expected an audio or video file",
            "empty_file",
            "file",
        )
    try:
        seconds = audio_info(path)[0]
    except AudioError as e:
        raise ApiError(400, _named(e, path, name), "invalid_audio", "file") from e
    if seconds > max_audio_seconds:
        raise _too_long(f"{name}: {seconds:.1f} s of audio (its header says)", max_audio_seconds)
    return seconds


def decode_upload(
    transcriber: Transcriber, path: Path, name: str, max_audio_seconds: float
) -> tuple[list[Window], float]:
    """A saved upload -> (its windows, its seconds), decoded in chunks and cut into windows
    as they come; ApiError 400 naming `name` for an unreadable, too long or truncated
    recording."""
    samples = 0

    def chunks():
        nonlocal samples
        for chunk in stream_audio(path, max_seconds=max_audio_seconds, strict_length=True):
            samples += len(chunk)
            yield chunk

    try:
        # A silent window is never decoded: its samples are not kept (an hour of silence
        # would otherwise be held whole, as copies).
        windows = [
            dataclasses.replace(w, samples=_NO_SAMPLES) if w.silent else w
            for w in transcriber.stream_windows(chunks())
        ]
    except AudioTooLong as e:
        raise _too_long(_named(e, path, name), max_audio_seconds) from e
    except AudioError as e:
        raise ApiError(400, _named(e, path, name), "invalid_audio", "file") from e
    return windows, samples / SAMPLE_RATE


def _too_long(what: str, max_audio_seconds: float) -> ApiError:
    return ApiError(
        400,
        f"{what}; this server transcribes at most {max_audio_seconds:g} s per request "
        "(--max_audio_seconds): split the recording",
        "audio_too_long",
        "file",
    )


def _named(e: Exception, path: Path, name: str) -> str:
    return str(e).replace(str(path), name)


@contextlib.contextmanager
def removed_after(path: Path):
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
