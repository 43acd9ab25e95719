"""examples/mini's biasing test set (local/name_sentences.py, local/prepare_names.py): sentences
with rare person and place names from WordNet, read by the held-out voices."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from conftest import MINI_LOCAL as LOCAL
from fortune_sentences import clean_sentence, transcript
from name_sentences import (
    MAX_WORDS,
    MIN_WORDS,
    TEMPLATES,
    fill,
    frequent_words,
    name_pools,
    name_sentences,
    ordinary_words,
    read_instances,
    read_text,
)
from prepare_corpus import HELDOUT, Voices
from voices import available_voices
from wordnet_sentences import WORDNET_DIR, wordnet_sentences

NUM = 60
SYNTHESISED = 5  # one per voice family
KALDI_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2dur")
HELDOUT_FIELDS = ("key", "wav", "txt", "duration", "voice", "speed", "pitch", "sentence")

needs_wordnet = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(), reason="needs wordnet-base (tools/install.sh)"
)
needs_voices = pytest.mark.skipif(
    shutil.which("espeak-ng") is None
    or not all(available_voices().get(e) for e in ("pico", "flite", "fest")),
    reason="needs espeak-ng (with the MBROLA voices), pico2wave, flite and festival "
    "(tools/install.sh)",
)


@pytest.fixture(scope="module")
def train_text(tmp_path_factory) -> Path:
    """A Kaldi text of 3,000 WordNet examples, the training text the names must avoid: under
    5,000 distinct words, so no word of it may be a name word."""
    path = tmp_path_factory.mktemp("names") / "train_text"
    txts = [transcript(s) for s in wordnet_sentences()[:3000]]
    path.write_text("".join(f"utt-{i:05d} {t}\n" for i, t in enumerate(txts)))
    return path


@pytest.fixture(scope="module")
def instances():
    return read_instances()


def build(train_text: Path, instances, seed: int = 777, num: int = NUM):
    exclude = ordinary_words() | frequent_words(train_text)
    pools = name_pools(instances, exclude, seed)
    return pools, name_sentences(pools, num, seed, read_text(train_text))


@needs_wordnet
def test_names_are_rare_and_in_the_transcripts(train_text, instances):
    _, sentences = build(train_text, instances)
    assert len(sentences) == NUM
    train = read_text(train_text)
    train_words = {w for t in train for w in t.split()}
    ordinary = ordinary_words()
    names = [n for s in sentences for n in s.names]
    assert len(set(names)) == len(names), "a name is used twice"
    for s in sentences:
        txt = transcript(s.sentence)
        assert clean_sentence(s.sentence) == s.sentence
        assert MIN_WORDS <= len(txt.split()) <= MAX_WORDS
        assert 1 <= len(s.names) <= 3
        assert txt not in train
        for name in s.names:
            assert f" {name} " in f" {txt} ", (name, txt)
            assert re.fullmatch(r"[a-z]+(?:'[a-z]+)?(?: [a-z]+(?:'[a-z]+)?)?", name), name
            assert not set(name.split()) & train_words, name
            assert not set(name.split()) & ordinary, name
    # people and places both, and full names now and then
    assert any(" by " in s.sentence for s in sentences)
    assert any(" in " in s.sentence for s in sentences)
    assert any(" " in n for n in names)


@needs_wordnet
def test_frequent_training_words_are_no_names(tmp_path, train_text, instances):
    pools, _ = build(train_text, instances)
    composers = {short for short, _ in pools["composer"]}
    assert "Brahms" in composers and "Vienna" in {short for short, _ in pools["city"]}
    # Brahms and Vienna become frequent training words: neither is a name any more
    text = tmp_path / "text"
    extra = [f"extra-{i:05d} brahms lived in vienna" for i in range(50)]
    text.write_text(train_text.read_text() + "".join(line + "\n" for line in extra))
    pools, sentences = build(text, instances)
    assert "Brahms" not in {short for short, _ in pools["composer"]}
    assert "Vienna" not in {short for short, _ in pools["city"]}
    assert not any(re.search(r"\b(brahms|vienna)\b", transcript(s.sentence)) for s in sentences)


@needs_wordnet
def test_deterministic_from_the_seed_and_training_sentences_skipped(train_text, instances):
    pools, sentences = build(train_text, instances)
    assert build(train_text, instances)[1] == sentences
    assert build(train_text, instances, seed=778)[1] != sentences
    # a sentence already in the training text is not read again
    seen = [transcript(sentences[3].sentence)]
    again = name_sentences(pools, NUM, 777, seen)
    assert len(again) == NUM
    assert sentences[3].sentence not in {s.sentence for s in again}


def test_templates_fit_with_any_name_length():
    for template in TEMPLATES:
        slots = template.count("{")
        assert 1 <= slots <= 3, template
        for name in ("Brahms", "Johannes Brahms", "O'Neill"):
            sentence = fill(template, [name] * slots)
            assert clean_sentence(sentence) == sentence, sentence
            assert MIN_WORDS <= len(transcript(sentence).split()) <= MAX_WORDS, sentence


@needs_wordnet
@needs_voices
def test_set_synthesised_by_heldout_voices_and_reused(tmp_path, train_text):
    data_dir = tmp_path / "data"
    (data_dir / "train").mkdir(parents=True)
    shutil.copy(train_text, data_dir / "train" / "text")
    cmd = [sys.executable, str(LOCAL / "prepare_names.py"), "--data_dir", str(data_dir)]
    cmd += ["--num_names", str(SYNTHESISED), "--nj", "2"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    d = data_dir / "names"
    rows = [json.loads(line) for line in (d / "data.jsonl").read_text().splitlines()]
    assert len(rows) == SYNTHESISED
    keys = [r["key"] for r in rows]
    assert keys == sorted(keys)
    for name in KALDI_FILES:
        lines = (d / name).read_text().splitlines()
        assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)
        assert len(lines) == (len({r["voice"] for r in rows}) if name == "spk2utt" else len(rows))
    assert (d / "text").read_text() == "".join(f"{r['key']} {r['txt']}\n" for r in rows)
    assert (d / "wav.scp").read_text() == "".join(f"{r['key']} {r['wav']}\n" for r in rows)
    heldout = {v for pool in Voices.build(HELDOUT).heldout.values() for v in pool}
    for r in rows:
        assert set(r) == set(HELDOUT_FIELDS) | {"names"}
        assert r["voice"] in heldout and r["key"].startswith(f"{r['voice']}-names-")
        assert r["txt"] == transcript(r["sentence"])
        assert r["names"] and all(f" {n} " in f" {r['txt']} " for n in r["names"])
        info = sf.info(r["wav"])
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.duration == pytest.approx(r["duration"], abs=1e-3)
    # every held-out family once: espeak's f4, mb-us2, pico-en-GB, flite-awb, fest-rab
    assert len({r["voice"] for r in rows}) == SYNTHESISED
    assert {r["voice"] for r in rows} - {"mb-us2", "pico-en-GB", "flite-awb", "fest-rab"} == {
        next(r["voice"] for r in rows if r["voice"].endswith("+f4"))
    }
    # a rerun writes the same files and synthesises nothing
    before = {p: p.read_bytes() for p in d.iterdir()}
    mtimes = {p: p.stat().st_mtime_ns for p in (data_dir / "wav").rglob("*.wav")}
    subprocess.run(cmd + ["--nj", "1"], check=True, capture_output=True, text=True)
    assert {p: p.read_bytes() for p in d.iterdir()} == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
