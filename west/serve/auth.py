"""API keys for west-serve: `Authorization: Bearer <key>` on every route but /health.

Keys come from `--api_key KEY` (repeatable), `--api_key_file FILE` (one key per line; blank
lines and lines starting with # are skipped) and the environment variable WEST_API_KEY (one
key, or several separated by commas); the command line shows in `ps`, so a file or the
environment is the better place on a shared machine. With no key, nothing is checked.

A request without a valid key gets 401 in OpenAI's error shape (code `missing_api_key` or
`invalid_api_key`) before the app sees it: its body is never read. /health stays open for
load balancers. The WebSocket (/v1/realtime) takes the key in its `Authorization` header,
or, from a browser, which cannot set headers on a WebSocket, as OpenAI's browser clients
send it: a subprotocol `openai-insecure-api-key.<key>` (never echoed back). A refused
WebSocket gets an HTTP 401 instead of the upgrade where the server supports that (uvicorn
does), else it is closed with code 1008. GET / (the demo page, static HTML with no data)
answers 401 with the page itself, which asks for the key and sends it with its requests.

Keys are compared in constant time (hmac.compare_digest) with every key.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Iterable
from pathlib import Path

OPEN_PATHS = frozenset({"/health"})
ENV = "WEST_API_KEY"
SUBPROTOCOL = "openai-insecure-api-key."


def read_keys(
    keys: Iterable[str] = (), files: Iterable[str | Path] = (), env: str = ENV
) -> list[str]:
    """The API keys from flags, key files and the environment; ValueError naming the file
    and line of a key that is not one word."""
    found = [("--api_key", k) for k in keys]
    for path in files:
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise ValueError(f"{path}: cannot read the API key file ({e.strerror})") from e
        found += [(f"{path}:{i}", line.strip()) for i, line in enumerate(lines, 1)]
    found += [(f"${env}", k) for k in os.environ.get(env, "").split(",")]
    out = []
    for where, key in found:
        if not key or key.startswith("#"):
            continue
        if len(key.split()) != 1 or not key.isprintable():
            raise ValueError(f"{where}: an API key must be one word of printable characters")
        out.append(key)
    return list(dict.fromkeys(out))


class ApiKeys:
    """ASGI middleware: pass a request on only with one of `keys` (module docstring);
    `page`, if given, is the HTML GET / answers 401 with."""

    def __init__(self, app, keys: Iterable[str], page: Path | None = None):
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.page = page

    def valid(self, key: str | None) -> bool:
        if key is None:
            return False
        given = key.encode()
        # every key compared, so the time says nothing of which one came close
        return sum(hmac.compare_digest(given, k) for k in self.keys) > 0

    async def __call__(self, scope, receive, send):
        if not self.keys or scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        if scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        key = bearer(scope)
        if key is None and scope["type"] == "websocket":
            key = _subprotocol_key(scope)
        if self.valid(key):
            return await self.app(scope, receive, send)
        if key is None:
            message, code = (
                "no API key: send it as `Authorization: Bearer <key>` (this server was started "
                "with --api_key)",
                "missing_api_key",
            )
        else:
            message, code = "incorrect API key", "invalid_api_key"
        if scope["type"] == "websocket":
            return await _refuse_websocket(scope, receive, send, message, code)
        if scope["path"] == "/" and self.page is not None and self.page.is_file():
            return await _respond(send, 401, self.page.read_bytes(), "text/html; charset=utf-8")
        return await _respond(send, 401, error_body(message, code), "application/json")


def bearer(scope) -> str | None:
    """The key of an `Authorization: Bearer <key>` header, or None."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and key.strip():
                return key.strip()
    return None


def _subprotocol_key(scope) -> str | None:
    for protocol in scope.get("subprotocols") or []:
        if protocol.startswith(SUBPROTOCOL):
            return protocol[len(SUBPROTOCOL) :]
    return None


def error_body(message: str, code: str) -> bytes:
    """OpenAI's error shape."""
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return json.dumps({"error": error}).encode()


async def _respond(send, status: int, body: bytes, media_type: str, kind: str = "http") -> None:
    headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer"),
    ]
    await send({"type": f"{kind}.response.start", "status": status, "headers": headers})
    await send({"type": f"{kind}.response.body", "body": body})


async def _refuse_websocket(scope, receive, send, message: str, code: str) -> None:
    """401 in place of the upgrade where the server can send one, else close with 1008."""
    if (await receive())["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await _respond(send, 401, error_body(message, code), "application/json", "websocket.http")
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
