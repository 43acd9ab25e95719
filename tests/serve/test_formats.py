"""west.serve.formats and west.serve.metrics, without a server."""

from __future__ import annotations

import json

import pytest

from west.serve.formats import render, timestamp
from west.serve.metrics import Histogram, Metrics
from west.transcriber import Segment

SEGMENTS = [
    Segment(0.0, 27.5, "first window"),
    Segment(27.5, 40.0, ""),  # a silent window: decoded as nothing
    Segment(40.0, 3725.25, "last one"),
]
TEXT = "first window last one"


def test_timestamps_of_subtitles():
    assert timestamp(0.0) == "00:00:00.000"
    assert timestamp(3725.2506, ",") == "01:02:05,251"
    assert timestamp(59.9996) == "00:01:00.000"  # rounding carries into the minutes


def test_each_format_lists_only_spoken_segments():
    body, media = render("json", TEXT, SEGMENTS, 3725.25)
    assert json.loads(body) == {"text": TEXT} and media == "application/json"
    assert render("text", TEXT, SEGMENTS, 3725.25)[0] == TEXT + "\n"
    verbose = json.loads(render("verbose_json", TEXT, SEGMENTS, 3725.25, "en")[0])
    assert verbose["language"] == "en" and verbose["duration"] == 3725.25
    assert [(s["id"], s["start"], s["end"], s["text"]) for s in verbose["segments"]] == [
        (0, 0.0, 27.5, "first window"),
        (1, 40.0, 3725.25, "last one"),
    ]
    assert verbose["segments"][1]["seek"] == 4000
    assert render("srt", TEXT, SEGMENTS, 3725.25)[0] == (
        "1\n00:00:00,000 --> 00:00:27,500\nfirst window\n\n"
        "2\n00:00:40,000 --> 01:02:05,250\nlast one\n"
    )
    assert render("vtt", TEXT, SEGMENTS, 3725.25)[0] == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:27.500\nfirst window\n\n"
        "00:00:40.000 --> 01:02:05.250\nlast one\n"
    )
    with pytest.raises(ValueError, match="expected one of"):
        render("mp3", TEXT, SEGMENTS, 1.0)


def test_histogram_buckets_are_cumulative():
    h = Histogram((1, 2, 4))
    for v in (1, 1, 3, 9):
        h.observe(v)
    assert h.lines("b") == [
        'b_bucket{le="1"} 2',
        'b_bucket{le="2"} 2',
        'b_bucket{le="4"} 3',
        'b_bucket{le="+Inf"} 4',
        "b_sum 14",
        "b_count 4",
    ]


def test_metrics_text_counts_requests_errors_and_queue():
    m = Metrics()
    m.request_started()
    m.queued(3, 12.0)
    m.dequeued(2, dropped=1, seconds=12.0)
    m.request_done(200, 0.3)
    m.rejected(503, "server_busy")
    text = m.render()
    for line in (
        'west_requests_total{status="200"} 1',
        'west_requests_total{status="503"} 1',
        'west_errors_total{kind="server_busy"} 1',
        "west_queue_windows 0",
        "west_queue_seconds 0",
        "west_windows_dropped_total 1",
        "west_requests_in_flight 0",
        "west_windows_decoded_total 2",
        'west_batch_size_bucket{le="2"} 1',
        'west_request_seconds_bucket{le="0.5"} 1',
    ):
        assert line in text.splitlines(), line
