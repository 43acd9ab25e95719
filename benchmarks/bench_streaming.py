"""Live transcription, measured: latency of partials and finals, real-time factor, streams
held at once, and streamed finals against offline decoding, in one run.

    python benchmarks/bench_streaming.py --model_dir examples/mini/exp/ctc_compress \\
        --text examples/mini/data/heldout/text --sentences 12 --streams 1 2 4

A recording is built of `--sentences` sentences of `--text`, each synthesised word by word
(bench_word_times.synthesise: every word's end known to the sample) and followed by 1.2 s
of silence. Then:

1. real-time factor: the recording fed through west.streaming.Stream (the Python API) as
   fast as it goes, in 100 ms chunks, partials and finals included;
2. a real west-serve on the model; for each N of `--streams`, N WebSocket clients at once
   (OpenAI's Realtime transcription events, 24 kHz PCM16 in 100 ms appends, each paced in
   real time) stream the recording. Per N: the latency from the end of a spoken word to the
   first partial that shows it (the partial's words aligned to the sentence's; p50, p95),
   the share of words a partial ever showed, the latency from the end of an utterance's
   speech to its final text (p50, p95, max), and whether every final came;
3. the finals of one stream joined, beside `west.load(...).transcribe` of the same file
   (what west-transcribe writes), with its default windows and with `segmentation="vad"`
   (`--segmentation vad`): WER of each against the sentences, and of the finals against each.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from bench_serving import Server
from bench_word_times import pick_voices, synthesise

from west.data.audio import SAMPLE_RATE
from west.scoring.align import CORRECT, align
from west.scoring.normalize import get_normalizer
from west.scoring.wer import score_utterances, summarize

PAUSE = 1.2  # seconds of silence after each sentence: more than the VAD's 0.5 s
CHUNK = 0.1  # seconds of audio per append
RATE = 24000  # what OpenAI's clients send


def build_recording(text: Path, sentences: int, workdir: Path, seed: int):
    """(16 kHz samples, wav path, [(sentence, [(word, start, end)], speech end)])."""
    rng = random.Random(seed)
    lines = [x.split(maxsplit=1) for x in text.read_text().splitlines() if x.strip()]
    lines = [x[1] for x in lines if len(x) == 2][:sentences]
    voices = pick_voices()
    pieces, utts, at = [], [], 0.0
    for n, sentence in enumerate(lines):
        audio, times = synthesise(sentence.split(), voices[n % len(voices)], rng)
        times = [(w, s + at, e + at) for w, s, e in times]
        utts.append((sentence, times, times[-1][2]))
        pause = np.zeros(int(PAUSE * SAMPLE_RATE), dtype=np.float32)
        pieces += [audio, pause]
        at += (len(audio) + len(pause)) / SAMPLE_RATE
    samples = np.concatenate(pieces)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "stream.wav"
    sf.write(path, samples, SAMPLE_RATE)
    return samples, path, utts


def seen_words(partial: str, sentence_words: list[str], normalize) -> set[int]:
    """Indices of the sentence's words that `partial` shows (aligned, equal after normalising)."""
    ref = [normalize(w) for w in sentence_words]
    hyp = [w for w in (normalize(x) for x in partial.split()) if w]
    keep = [i for i, w in enumerate(ref) if w]
    ops = align([ref[i] for i in keep], hyp)
    seen, i = set(), 0
    for op in ops:
        if op.op == CORRECT:
            seen.add(keep[i])
        i += op.ref is not None
    return seen


def stream_once(url: str, pcm: bytes, results: dict, key: int) -> None:
    """One client: stream `pcm` (24 kHz PCM16) in real time; record every event's time (s
    after the first append) in results[key]."""
    from websockets.sync.client import connect

    events, done = [], threading.Event()
    step = int(CHUNK * RATE) * 2
    n_chunks = -(-len(pcm) // step)
    with connect(url.replace("http", "ws") + "/v1/realtime?intent=transcription") as ws:
        for _ in range(2):  # transcription_session.created, session.created
            ws.recv(timeout=30)
        update = {"input_audio_format": "pcm16", "turn_detection": {"type": "server_vad"}}
        ws.send(json.dumps({"type": "transcription_session.update", "session": update}))
        t0 = time.monotonic()

        def receive():
            try:
                while True:
                    event = json.loads(ws.recv(timeout=120))
                    events.append((time.monotonic() - t0, event))
                    if event["type"].endswith("transcription.completed"):
                        if (
                            sum(e["type"].endswith("completed") for _, e in events)
                            >= results["utterances"]
                        ):
                            done.set()
                            return
            except Exception:  # closed or timed out: what came is what is measured
                done.set()

        reader = threading.Thread(target=receive, daemon=True)
        reader.start()
        for i in range(n_chunks):
            wait = t0 + i * CHUNK - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            chunk = base64.b64encode(pcm[i * step : (i + 1) * step]).decode()
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        done.wait(timeout=120)
    results[key] = events


def latencies(events, utts, normalize):
    """(word latencies, share of words shown, final latencies, finals, final texts)."""
    items = []  # item ids in the order speech started
    for _, e in events:
        if e["type"] == "input_audio_buffer.speech_started" and e["item_id"] not in items:
            items.append(e["item_id"])
    word_lat, shown, total, final_lat, finals = [], 0, 0, [], {}
    for k, (_, times, speech_end) in enumerate(utts):
        if k >= len(items):
            total += len(times)
            continue
        item, first = items[k], {}
        words = [w for w, _, _ in times]
        for t, e in events:
            if e.get("item_id") != item:
                continue
            if e["type"].endswith("transcription.delta"):
                for i in seen_words(e.get("partial", ""), words, normalize):
                    first.setdefault(i, t)
            if e["type"].endswith("transcription.completed"):
                finals[k] = e["transcript"]
                final_lat.append(t - speech_end)
        word_lat += [first[i] - times[i][2] for i in first]
        shown += len(first)
        total += len(times)
    return word_lat, shown / max(total, 1), final_lat, finals


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model_dir", required=True, help="a WeST model (with a CTC branch for partials)"
    )
    p.add_argument("--text", required=True, help="Kaldi text file: `key sentence` lines")
    p.add_argument("--sentences", type=int, default=12)
    p.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default="/tmp/west_streaming")
    p.add_argument("--json", help="write every figure here")
    args = p.parse_args(argv)

    import west
    from west.streaming import Final, Stream
    from west.transcriber import Transcriber

    normalize = get_normalizer("english")
    samples, path, utts = build_recording(
        Path(args.text), args.sentences, Path(args.workdir), args.seed
    )
    audio_s = len(samples) / SAMPLE_RATE
    print(f"recording: {len(utts)} sentences, {audio_s:.1f} s ({path})", flush=True)
    transcriber = west.load(args.model_dir)
    figures: dict = {"audio_seconds": audio_s}

    # 1. the Python API, as fast as it goes
    start = time.perf_counter()
    stream, step = Stream(transcriber), int(CHUNK * SAMPLE_RATE)
    events = []
    for i in range(0, len(samples), step):
        events += stream.feed(samples[i : i + step], SAMPLE_RATE)
    events += stream.close()
    rtf = (time.perf_counter() - start) / audio_s
    api_finals = [e.text for e in events if isinstance(e, Final)]
    figures["api_rtf"] = rtf
    print(f"Python API: RTF {rtf:.3f} (partials and finals), {len(api_finals)} finals", flush=True)

    # 3. offline, as west-transcribe decodes the file: windows of at most 28 s cut at pauses
    # (the default), and utterances cut by the VAD as live (--segmentation vad)
    start = time.perf_counter()
    offline = transcriber.transcribe(str(path))
    figures["offline_rtf"] = (time.perf_counter() - start) / audio_s
    vad = Transcriber(transcriber.model, segmentation="vad").transcribe(str(path))
    del transcriber

    # 2. the server, N streams at once
    pcm = (np.clip(soxr.resample(samples, SAMPLE_RATE, RATE), -1, 1) * 32767).astype("<i2")
    server = Server(args.model_dir, Path(args.workdir) / "server.log").launch().wait()
    rows = []
    try:
        for n in args.streams:
            results = {"utterances": len(utts)}
            threads = [
                threading.Thread(target=stream_once, args=(server.url, pcm.tobytes(), results, k))
                for k in range(n)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            word_lat, shown, final_lat, finals_n = [], [], [], 0
            for k in range(n):
                w, s, f, fin = latencies(results.get(k, []), utts, normalize)
                word_lat += w
                shown.append(s)
                final_lat += f
                finals_n += len(fin)
                if n == args.streams[0] and k == 0:
                    stream_finals = fin
            row = {
                "streams": n,
                "word_p50": pct(word_lat, 50),
                "word_p95": pct(word_lat, 95),
                "shown": float(np.mean(shown)),
                "final_p50": pct(final_lat, 50),
                "final_p95": pct(final_lat, 95),
                "final_max": max(final_lat, default=float("nan")),
                "finals": f"{finals_n}/{n * len(utts)}",
            }
            rows.append(row)
            print(row, flush=True)
    finally:
        server.stop()
    figures["streams"] = rows

    refs = {"all": " ".join(s for s, _, _ in utts)}
    streamed = " ".join(stream_finals.get(k, "") for k in range(len(utts)))
    hyps = {"streamed": streamed, "api": " ".join(api_finals), "offline": offline, "vad": vad}
    wer = {
        name: summarize(score_utterances(refs, {"all": hyp}, str.split, normalize)).wer
        for name, hyp in hyps.items()
    }
    between = {
        name: summarize(
            score_utterances({"all": hyps[name]}, {"all": streamed}, str.split, normalize)
        ).wer
        for name in ("offline", "vad")
    }
    figures.update(wer=wer, streamed_vs_offline=between, texts=hyps)

    print("\n| streams at once | word end -> first partial showing it, p50 / p95 (s) | words "
          "shown in a partial | speech end -> final, p50 / p95 / max (s) | finals |")  # fmt: skip
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['streams']} | {r['word_p50']:.2f} / {r['word_p95']:.2f} | "
            f"{100 * r['shown']:.0f} % | {r['final_p50']:.2f} / {r['final_p95']:.2f} / "
            f"{r['final_max']:.2f} | {r['finals']} |"
        )
    print(
        f"\nRTF: streaming (Python API, partials included) {rtf:.3f}, offline "
        f"{figures['offline_rtf']:.3f}. WER against the sentences: streamed finals "
        f"{wer['streamed']:.2f}, Python API finals {wer['api']:.2f}, west-transcribe "
        f"{wer['offline']:.2f}, west-transcribe --segmentation vad {wer['vad']:.2f}. Streamed "
        f"finals against west-transcribe: {between['offline']:.2f}, against "
        f"--segmentation vad: {between['vad']:.2f}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
