"""Serve a trained WeST model over HTTP, OpenAI-compatible, with dynamic batching.

    west-serve --model_dir exported/ --port 8000
    curl http://127.0.0.1:8000/v1/audio/transcriptions -F file=@a.wav -F model=west

POST /v1/audio/transcriptions takes OpenAI's multipart fields; GET /v1/models, /health,
/metrics (Prometheus) and / (a demo page) are there too (west/serve/app.py), and live
transcription over a WebSocket, ws://HOST:PORT/v1/realtime?intent=transcription, in
OpenAI's Realtime protocol (west/serve/realtime.py). One worker
decodes the windows of all pending requests together, a window of each request in turn: up
to --max_batch_size, waiting at most --max_wait_ms for a batch to fill
(--max_arrival_wait_ms while other uploads are still being read); a request that would wait
longer than --max_wait_s gets 503 with Retry-After at once. --api_key turns authentication
on; --max_upload_mb, --max_audio_seconds, --header_timeout_s and --body_timeout_s bound what
one client can ask. SIGTERM (or Ctrl-C) answers the requests in flight, then exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

import torch

from west.bin.recognize import add_decoding_flags, add_hotword_flags, add_precision_flags


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model_dir",
        required=True,
        help="checkpoint folder written by west-train, or a folder written by west-export",
    )
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen on every interface")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_precision_flags(p)
    p.add_argument(
        "--model_name", help="the id /v1/models lists (default: the model folder's name)"
    )
    p.add_argument("--max_batch_size", type=int, default=16, help="windows decoded together")
    p.add_argument(
        "--max_wait_ms",
        type=float,
        default=20.0,
        help="longest wait for a batch to fill after its first window is queued",
    )
    p.add_argument(
        "--max_arrival_wait_ms",
        type=float,
        default=250.0,
        help="while other requests' uploads are still being read, wait up to this long for "
        "them to join the batch (it does not delay a lone request)",
    )
    p.add_argument(
        "--max_queue",
        type=int,
        default=256,
        help="windows waiting to be decoded (and requests in flight); beyond, 503",
    )
    p.add_argument(
        "--max_upload_mb",
        type=float,
        default=50.0,
        help="largest request body; beyond, 413 at once (from Content-Length, or as a body "
        "without one passes it)",
    )
    p.add_argument(
        "--max_audio_seconds",
        type=float,
        default=7200.0,
        help="longest recording one request may send, read from its header before decoding "
        "(and checked again while decoding); beyond, 400 audio_too_long",
    )
    p.add_argument(
        "--max_wait_s",
        type=float,
        default=30.0,
        help="a request that would wait longer than this for the audio queued before it "
        "(at the measured throughput) gets 503 with Retry-After at once; 0: no limit",
    )
    p.add_argument(
        "--body_timeout_s",
        type=float,
        default=30.0,
        help="a request body may take this long plus 1 s per 16 KiB received; beyond, 408 "
        "and the connection is closed",
    )
    p.add_argument(
        "--api_key",
        action="append",
        default=[],
        help="a key clients must send as `Authorization: Bearer KEY` on every route but "
        "/health (repeatable; also --api_key_file and $WEST_API_KEY, which ps does not show); "
        "none: no authentication",
    )
    p.add_argument(
        "--api_key_file",
        action="append",
        default=[],
        help="a file of API keys, one per line (# comments and blank lines skipped)",
    )
    p.add_argument(
        "--max_streams",
        type=int,
        default=64,
        help="live (WebSocket) streams open at once; beyond, a new one gets an error and closes",
    )
    p.add_argument(
        "--partial_interval_ms",
        type=float,
        default=320.0,
        help="a live stream's partial text is re-decoded every this much new audio while a "
        "person speaks (models with a CTC branch); 0: no partials",
    )
    p.add_argument(
        "--header_timeout_s",
        type=float,
        default=10.0,
        help="a request's headers must arrive within this many seconds of the server being "
        "ready for them; beyond, 408 and the connection is closed (west.serve.timeouts); "
        "0: no limit",
    )
    p.add_argument(
        "--num_beams", type=int, help="beam size (1 = greedy) [default: the model's decode_conf]"
    )
    add_decoding_flags(p)
    add_hotword_flags(p)
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    import west
    from west.serve.app import ServeSettings, create_app
    from west.serve.auth import read_keys
    from west.serve.timeouts import header_timeout_protocol

    try:
        api_keys = read_keys(args.api_key, args.api_key_file)
    except ValueError as e:
        logging.getLogger("west.serve").error("%s", e)
        return 1
    if not api_keys and args.host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("west.serve").warning(
            "listening on %s without --api_key: anyone who reaches this port is served",
            args.host,
        )
    try:
        transcriber = west.load(
            args.model_dir,
            device=args.device,
            dtype=args.dtype,
            quantize=args.quantize,
            num_beams=args.num_beams,
            batch_size=args.max_batch_size,
            max_new_tokens=args.max_new_tokens,
            engine=args.engine,
            ctc_weight=args.ctc_weight,
            max_tokens_per_second=args.max_tokens_per_second,
            hotwords=args.hotwords,
            hotword_bonus=args.hotword_bonus,
            context_route=args.context_route,
        )
        transcriber.check_hotwords([])  # the server's own list must fit the prompt
    except (FileNotFoundError, ValueError) as e:  # no config, or weights that do not fit
        logging.getLogger("west.serve").error("%s", e)
        return 1
    settings = ServeSettings(
        model_name=args.model_name or Path(args.model_dir).resolve().name,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_arrival_wait_ms=args.max_arrival_wait_ms,
        max_queue=args.max_queue,
        max_upload_mb=args.max_upload_mb,
        max_audio_seconds=args.max_audio_seconds,
        max_wait_s=args.max_wait_s,
        body_timeout_s=args.body_timeout_s,
        api_keys=tuple(api_keys),
        max_streams=args.max_streams,
        partial_interval_ms=args.partial_interval_ms,
    )
    # uvicorn handles SIGTERM and SIGINT: it stops accepting, answers the requests in
    # flight, then runs the app's shutdown (the decoding worker drains and stops). Then it
    # raises the signal again for the handler it found, which for SIGTERM is this one: a
    # shutdown asked for and done cleanly exits 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(
            create_app(transcriber, settings),
            host=args.host,
            port=args.port,
            log_level=args.log_level.lower(),
            timeout_graceful_shutdown=None,
            # uvicorn's h11 protocol with a deadline for each request's headers (slow
            # clients) and a lingering close; idle keep-alive connections: uvicorn's
            # timeout_keep_alive, 5 s.
            http=header_timeout_protocol(args.header_timeout_s),
        )
    except KeyboardInterrupt:  # Ctrl-C, after the same clean shutdown
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
