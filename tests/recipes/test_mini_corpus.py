"""examples/mini's corpus synthesis (local/prepare_corpus.py) on a tiny size: every voice
family, baked augmentation, the held-out set (Harvard sentences, held-out voices)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import MINI_LOCAL as LOCAL
from espeak import speak
from fortune_sentences import clean_sentence, fortune_sentences, split_sentences, transcript
from prepare_corpus import FAMILIES, HELDOUT, Voices
from voices import available_voices
from wordnet_sentences import wordnet_sentences

# dev/test: 4 cycle through their first 4 voice groups; heldout: 5, one per family
SIZES = {"train": 24, "dev": 4, "test": 4, "heldout": 5}
KALDI_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur")

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None
    or not Path("/usr/share/games/fortunes").is_dir()
    or not Path("/usr/share/wordnet/data.noun").is_file()
    or not all(available_voices().get(e) for e in ("pico", "flite", "fest")),
    reason="needs espeak-ng (with the MBROLA voices), pico2wave, flite, festival, fortunes and "
    "wordnet-base (tools/install.sh)",
)


def prepare(data_dir: Path, nj: int = 2) -> None:
    cmd = [sys.executable, str(LOCAL / "prepare_corpus.py"), "--data_dir", str(data_dir)]
    cmd += ["--download_dir", str(data_dir.parent / "download")]
    cmd += ["--nj", str(nj)] + [a for s, n in SIZES.items() for a in (f"--num_{s}", str(n))]
    subprocess.run(cmd, check=True, capture_output=True, text=True)


def table(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in path.read_text().splitlines()]


def snapshot(data_dir: Path) -> dict[str, bytes]:
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in files}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("mini") / "data"
    prepare(data_dir)
    return data_dir


def rows(data_dir: Path, split: str) -> list[dict]:
    lines = (data_dir / split / "data.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_audio_readable_16k_mono(corpus):
    for split, n in SIZES.items():
        utts = rows(corpus, split)
        assert len(utts) == n
        for u in utts:
            info = sf.info(u["wav"])
            assert (info.samplerate, info.channels) == (16000, 1)
            assert 0.5 < info.duration <= 12.0
            assert info.duration == pytest.approx(u["duration"], abs=1e-3)
            audio, _ = sf.read(u["wav"])
            assert abs(audio).max() > 0.01, f"{u['wav']}: silent"


def test_splits_disjoint_and_heldout_voices(corpus):
    sentences = {s: {u["txt"] for u in rows(corpus, s)} for s in SIZES}
    assert not sentences["train"] & sentences["dev"]
    assert not sentences["train"] & sentences["test"]
    assert not sentences["dev"] & sentences["test"]
    train_voices = {u["voice"] for u in rows(corpus, "train")}
    assert "mb-us2" not in train_voices
    assert not any(v.endswith("+f4") for v in train_voices)
    for split in ("dev", "test"):
        voices = [u["voice"] for u in rows(corpus, split)]
        assert "mb-us2" in voices and any(v.endswith("+f4") for v in voices)
        # and half from the training voices (at this size, not all drawn for train)
        seen = [v for v in voices if v != "mb-us2" and not v.endswith("+f4")]
        assert len(seen) == len(voices) // 2 and any(v.startswith("mb-") for v in seen)


def test_kaldi_files_sorted_and_match_jsonl(corpus):
    for split in SIZES:
        d = corpus / split
        utts = rows(corpus, split)
        keys = [u["key"] for u in utts]
        assert keys == sorted(keys) and len(set(keys)) == len(keys)
        for name in KALDI_FILES:
            entries = table(d / name)
            assert [k for k, _ in entries] == sorted(k for k, _ in entries), f"{d / name}"
        assert table(d / "wav.scp") == [(u["key"], u["wav"]) for u in utts]
        assert table(d / "text") == [(u["key"], u["txt"]) for u in utts]
        assert table(d / "utt2spk") == [(u["key"], u["voice"]) for u in utts]
        assert all(u["key"].startswith(u["voice"] + "-") for u in utts)
        spk2utt = {s: us.split() for s, us in table(d / "spk2utt")}
        assert spk2utt == {
            v: [u["key"] for u in utts if u["voice"] == v] for v in {u["voice"] for u in utts}
        }
        for u in utts:
            assert u["txt"] == transcript(u["sentence"])
            assert 3 <= len(u["txt"].split()) <= 20


def test_heldout_set_reads_other_text_with_unheard_voices(corpus):
    held = rows(corpus, "heldout")
    train = rows(corpus, "train")
    voices = Voices.build(HELDOUT)
    heldout_voices = {v for pool in voices.heldout.values() for v in pool}
    assert {u["voice"] for u in held} <= heldout_voices
    assert not {u["voice"] for u in train} & heldout_voices
    # one voice of each family, in family order
    by_index = {int(u["key"][-5:]): u["voice"] for u in held}
    assert [by_index[i] for i in (1, 2, 3, 4)] == ["mb-us2", "pico-en-GB", "flite-awb", "fest-rab"]
    assert by_index[0].endswith("+f4")
    seen = {u["txt"] for s in ("train", "dev", "test") for u in rows(corpus, s)}
    assert not {u["txt"] for u in held} & seen
    assert all("augment" not in u for s in ("dev", "test", "heldout") for u in rows(corpus, s))


def test_train_mixes_families_and_bakes_augmentation(corpus):
    train = rows(corpus, "train")
    family = {v: f for f, vs in FAMILIES.items() for v in vs}
    assert len({family[u["voice"]] for u in train}) >= 4
    augmented = [u for u in train if "augment" in u]
    assert 0.4 * len(train) <= len(augmented) < len(train)
    # the chain is part of the wav's name hash: the same plan without it names another file
    assert len({Path(u["wav"]).name for u in train}) == len(train)


def test_rerun_is_idempotent_and_resumes(tmp_path, corpus):
    data_dir = tmp_path / "data"
    shutil.copytree(corpus, data_dir)
    # The copy's lists still name the original wavs; a rerun rewrites them for this folder.
    prepare(data_dir)
    before = snapshot(data_dir)
    mtimes = {p: p.stat().st_mtime_ns for p in (data_dir / "wav").rglob("*.wav")}
    prepare(data_dir)
    assert snapshot(data_dir) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes, "wavs were rewritten"

    # A lost wav is synthesised again, identically (and the same with one process).
    victims = sorted(mtimes)[::5]
    for p in victims:
        p.unlink()
    prepare(data_dir, nj=1)
    assert snapshot(data_dir) == before
    assert not list(data_dir.rglob(".*.tmp"))


def test_sentence_cleaning():
    assert transcript("Don't panic -- it's well-known!") == "don't panic it's well known"
    assert transcript("'Tis the season, 'twas said.") == "tis the season twas said"
    assert clean_sentence("You are what you eat.") == "You are what you eat."
    assert clean_sentence("Too short.") is None
    assert clean_sentence("No ending punctuation here at all") is None
    assert clean_sentence("The IBM machine was very slow.") is None  # spelled out
    assert clean_sentence("A: Is there a dog in here?") is None
    assert clean_sentence("Use the <tab> key, always.") is None
    assert clean_sentence(" ".join(["word"] * 21) + ".") is None
    assert split_sentences("Mr. Smith went to town. He came back.") == []
    assert split_sentences('He said "hello" to me. And left!\n\t\t-- Anonymous') == [
        "He said hello to me.",
        "And left!",
    ]


def test_splits_read_fortunes_and_wordnet_in_turn(corpus):
    fortunes = {transcript(s) for s in fortune_sentences()}
    wordnet = {transcript(s) for s in wordnet_sentences()}
    for split in ("train", "dev", "test"):
        txts = [u["txt"] for u in rows(corpus, split)]
        from_fortunes = sum(t in fortunes for t in txts)
        from_wordnet = sum(t in wordnet for t in txts)
        assert from_fortunes + from_wordnet == len(txts)
        assert abs(from_fortunes - from_wordnet) <= 1, split  # none dropped at this size


def test_mbrola_voice_by_file_reads_as_by_name():
    """espeak.speak names an MBROLA voice by its file (mb/mb-us1): espeak-ng's samples for
    the voice by name."""
    text = "Abandon the search for Truth; settle for a good fantasy."
    for i, voice in enumerate(FAMILIES["mbrola"]):
        speed, pitch = 130 + 20 * i, 30 + 12 * i
        cmd = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout"]
        by_name = subprocess.run(cmd, input=text.encode(), capture_output=True, check=True)
        expected, rate = sf.read(io.BytesIO(by_name.stdout), dtype="int16")
        audio, our_rate = speak(text, voice, speed, pitch)
        assert our_rate == rate and np.array_equal(audio, expected), voice
