"""A deadline for each request's headers, so slow clients cannot hold connections forever;
and a lingering close, so an early answer reaches a client still sending its body.

uvicorn closes a connection idle between requests after `timeout_keep_alive` (5 s by
default, kept by west-serve), but it has no limit on how long a request line and headers
may take to arrive, nor on a new connection that sends nothing: a client that sends a
byte a second keeps its socket, and enough of them exhaust the file descriptors.

`header_timeout_protocol(seconds)` is uvicorn's h11 protocol with that limit, passed as
`uvicorn.run(app, http=...)`. Timed: from the moment the server is ready for a request
(the connection opened, or the previous request and its response are done) until the
request's headers are complete. Past the deadline, a client that has sent part of a
request gets `408 Request Timeout` with OpenAI's error shape and `Connection: close`; one
that has sent nothing is closed without a word, as uvicorn closes idle keep-alive
connections (a response nobody asked for would be read as the answer to the client's next
request). So an idle keep-alive connection lives min(timeout_keep_alive, seconds).

Not timed: a request's body (the app limits how long an upload may take), the response,
and WebSocket connections (the deadline stops when the upgrade request's headers are
complete; uvicorn's WebSocket protocol then owns the socket).

It forces h11 even where httptools is installed (uvicorn's "auto" would pick httptools):
the deadline follows h11's view of the connection (`their_state` is IDLE until a request's
headers are parsed, then moves on, also for upgrades and pipelined requests), and the
parser's speed is nothing next to decoding speech.

Lingering close. The app answers some requests before reading their bodies (413 from
Content-Length, 408 for a body that is too slow) with `Connection: close`. Closing the
socket while the client is still sending makes the kernel reset the connection, and most
clients (requests, httpx: they send the whole body before reading) then report a reset
instead of the answer. So, as nginx does, such a connection stops sending, keeps reading and
dropping what comes for up to LINGER_S seconds or until the client closes, then closes.

On a public network, put a reverse proxy in front (nginx: client_header_timeout,
client_body_timeout, limit_conn per address; or a cloud load balancer): it buffers slow
clients cheaply, terminates TLS and limits connections per address, which this deadline
does not (many clients that each send headers just in time still hold a socket each).
"""

from __future__ import annotations

import asyncio
import contextlib
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

TIMEOUT_BODY = json.dumps(
    {
        "error": {
            "message": "the request's headers did not arrive in time",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }
).encode()


LINGER_S = 5.0  # longest lingering close (seconds)


class _LingeringTransport:
    """The connection's transport as uvicorn sees it: `close()` while the client is still
    sending its request body becomes a lingering close (module docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: HeaderTimeoutProtocol):
        self._transport, self._protocol = transport, protocol
        self.lingering = False

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self.lingering or self._transport.is_closing()

    def close(self) -> None:
        if self.lingering or self._transport.is_closing():
            return
        if self._protocol.conn.their_state is not h11.SEND_BODY:
            self._transport.close()
            return
        self.lingering = True
        with contextlib.suppress(Exception):
            self._transport.resume_reading()
        if self._transport.can_write_eof():
            self._transport.write_eof()  # the answer is complete; reads go on
        self._protocol.loop.call_later(LINGER_S, self._transport.close)


class HeaderTimeoutProtocol(H11Protocol):
    """H11Protocol whose requests must have complete headers within `header_timeout_s` of
    the server being ready for them (see the module docstring). Build one with
    `header_timeout_protocol`."""

    header_timeout_s: float = 10.0

    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _LingeringTransport(transport, self)  # type: ignore[assignment]
        self._track_headers()

    def data_received(self, data: bytes) -> None:
        if self.transport.lingering:  # the rest of a body already answered: dropped
            return
        super().data_received(data)
        self._track_headers()

    def on_response_complete(self) -> None:
        # Starts the next cycle (and parses a pipelined request) when both sides are done.
        super().on_response_complete()
        self._track_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _track_headers(self) -> None:
        """Run the timer while h11 waits for a request's headers, stop it otherwise."""
        waiting = (
            self.header_timeout_s > 0
            and self.conn.their_state is h11.IDLE
            and not self.transport.is_closing()
        )
        if waiting and self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.header_timeout_s, self._on_header_timeout
            )
        elif not waiting:
            self._cancel_header_timer()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _on_header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        received, _ = self.conn.trailing_data  # a request's start, waiting for the rest
        if received:
            host, port = self.client or ("?", 0)
            self.logger.warning(
                "%s:%d - request headers not complete in %g s: 408",
                host,
                port,
                self.header_timeout_s,
            )
            headers = [
                *self.server_state.default_headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(TIMEOUT_BODY)).encode()),
                (b"connection", b"close"),
            ]
            response = h11.Response(status_code=408, headers=headers, reason=b"Request Timeout")
            self.transport.write(self.conn.send(response) + self.conn.send(h11.Data(TIMEOUT_BODY)))
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        else:
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()


def header_timeout_protocol(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class to pass as `uvicorn.run(..., http=...)`: requests must have
    complete headers within `seconds` (0: no limit); lingering close either way."""
    if seconds < 0:
        raise ValueError(f"header timeout must be >= 0 seconds, got {seconds}")
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": seconds})
