"""Data lists: every kind of bad input gets an error naming the file, the line and the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from west.data.batching import LengthGroupedSampler, collate
from west.data.dataset import DataError, read_data, read_jsonl, read_kaldi_dir, validate


def _jsonl(tmp_path, lines):
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_jsonl_and_kaldi_dir_agree(speech_dir, tmp_path):
    from_jsonl = read_jsonl(speech_dir / "data.jsonl")
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    (kaldi / "wav.scp").write_text("".join(f"{u.key} {u.wav}\n" for u in from_jsonl))
    (kaldi / "text").write_text((speech_dir / "text").read_text())
    from_kaldi = read_kaldi_dir(kaldi)
    assert [(u.key, u.wav, u.txt) for u in from_jsonl] == [
        (u.key, u.wav, u.txt) for u in from_kaldi
    ]
    both = read_data(f"{speech_dir / 'data.jsonl'},{kaldi}")
    assert len(both) == 2 * len(from_jsonl)


def test_key_derived_from_wav_name(speech_dir, tmp_path):
    path = _jsonl(tmp_path, [json.dumps({"wav": str(speech_dir / "utt3.wav"), "txt": "a"})])
    assert read_jsonl(path)[0].key == "utt3"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"txt": "hello"}', 'no "wav" path'),
        ('["a", "b"]', 'no "wav" path'),
        ('{"wav": "a.wav", "txt": 5}', '"txt" must be a string'),
    ],
)
def test_malformed_jsonl_line(tmp_path, speech_dir, line, message):
    good = json.dumps({"wav": str(speech_dir / "utt0.wav"), "txt": "x"})
    path = _jsonl(tmp_path, [good, line])
    with pytest.raises(DataError, match=message) as e:
        read_jsonl(path)
    assert f"{path}:2:" in str(e.value)


def test_non_utf8_line(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"wav": "a.wav", "txt": "ok"}\n{"wav": "b.wav", "txt": "\xff\xfe"}\n')
    with pytest.raises(
        DataError, match=f"{path}:2: expected UTF-8 text, found byte 0xff at column 26"
    ):
        read_jsonl(path)


def test_kaldi_line_with_one_field_and_duplicates(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text("a /x/a.wav\nb\n")
    with pytest.raises(DataError, match=f"{d / 'wav.scp'}:2: one field 'b'"):
        read_kaldi_dir(d)
    (d / "wav.scp").write_text("a /x/a.wav\nb /x/b.wav\na /x/c.wav\n")
    with pytest.raises(DataError, match="3: duplicate utterance id 'a' \\(first seen on line 1\\)"):
        read_kaldi_dir(d)


def test_validate_reports_every_problem_with_place(speech_dir, tmp_path):
    long_wav = tmp_path / "long.wav"
    sf.write(long_wav, np.full(16000 * 31, 0.1, dtype=np.float32), 16000)
    text_file = tmp_path / "notaudio.wav"
    text_file.write_text("hello")
    ok = str(speech_dir / "utt0.wav")
    path = _jsonl(
        tmp_path,
        [
            json.dumps({"key": "good", "wav": ok, "txt": "fine"}),
            json.dumps({"key": "missing", "wav": str(tmp_path / "nope.wav"), "txt": "x"}),
            json.dumps({"key": "text", "wav": str(text_file), "txt": "x"}),
            json.dumps({"key": "long", "wav": str(long_wav), "txt": "x"}),
            json.dumps({"key": "empty", "wav": ok, "txt": "   "}),
            json.dumps({"key": "good", "wav": ok, "txt": "again"}),
        ],
    )
    utts = read_jsonl(path)
    with pytest.raises(DataError) as e:
        validate(utts)
    msg = str(e.value)
    assert "5 bad utterance(s) of 6" in msg
    for line, what in [
        (2, "file not found"),
        (3, "not readable audio"),
        (4, "31.00 s, longer than"),
        (5, "empty transcript"),
        (6, "duplicate key"),
    ]:
        assert f"{path}:{line}" in msg and what in msg
    good = validate(utts, skip_bad=True)
    assert [u.key for u in good] == ["good"]
    assert good[0].duration > 0


def test_transcript_longer_than_model_max_length(speech_dir, tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    txt = " ".join(["word"] * 50)
    n = len(tok(txt, add_special_tokens=False).input_ids)
    assert n > 20
    path = _jsonl(
        tmp_path, [json.dumps({"key": "k", "wav": str(speech_dir / "utt0.wav"), "txt": txt})]
    )
    with pytest.raises(
        DataError, match=f"{path}:1 \\(key k\\): transcript is {n} tokens, more than the 20"
    ):
        validate(read_jsonl(path), tokenizer=tok, max_tokens=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=5))
def test_jsonl_reader_parses_or_raises_documented_error(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("h") / "x.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        utts = read_jsonl(path)
    except DataError as e:
        assert str(path) in str(e)
    else:
        assert all(isinstance(u.wav, str) for u in utts)


def test_collate_pads_and_keeps_lengths():
    items = [
        {"key": "a", "mel": np.ones((80, 5), dtype=np.float32), "text_ids": [1, 2, 3]},
        {"key": "b", "mel": np.ones((80, 9), dtype=np.float32), "text_ids": [4]},
    ]
    import torch

    for it in items:
        it["mel"] = torch.from_numpy(it["mel"])
    b = collate(items)
    assert b["mel"].shape == (2, 80, 9) and b["mel_lens"].tolist() == [5, 9]
    assert b["mel"][0, :, 5:].abs().sum() == 0
    assert b["text_ids"].tolist() == [[1, 2, 3], [4, 0, 0]] and b["text_lens"].tolist() == [3, 1]


def test_length_grouped_sampler_groups_and_is_reproducible():
    rng = np.random.default_rng(0)
    lengths = rng.uniform(1, 20, size=103).tolist()
    sampler = LengthGroupedSampler(lengths, batch_size=4, seed=3, group_batches=50)
    order = list(sampler)
    assert sorted(order) == list(range(103))
    assert order == list(LengthGroupedSampler(lengths, 4, seed=3, group_batches=50))
    sampler.set_epoch(1)
    assert list(sampler) != order
    spread = np.mean([np.ptp([lengths[i] for i in order[j : j + 4]]) for j in range(0, 100, 4)])
    random_spread = np.mean([np.ptp(lengths[j : j + 4]) for j in range(0, 100, 4)])
    assert spread < 0.3 * random_spread


def test_too_short_recording_is_refused(tmp_path):
    wav = tmp_path / "click.wav"
    sf.write(wav, np.full(800, 0.2, dtype=np.float32), 16000)  # 50 ms
    path = _jsonl(tmp_path, [json.dumps({"key": "click", "wav": str(wav), "txt": "a"})])
    with pytest.raises(DataError, match=f"{path}:1 \\(key click\\): .* 0.050 s, too short"):
        validate(read_jsonl(path))


def test_transcript_budget_depends_on_own_speech(speech_dir, tmp_path, tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    txt = " ".join(["word"] * 10)
    n = len(tok(txt, add_special_tokens=False).input_ids)
    path = _jsonl(
        tmp_path, [json.dumps({"key": "k", "wav": str(speech_dir / "utt0.wav"), "txt": txt})]
    )
    utts = read_jsonl(path)
    duration = validate(utts)[0].duration
    speech = int(np.ceil(duration * 10))
    # Exactly enough room beside this utterance's own speech tokens: accepted.
    assert validate(utts, tokenizer=tok, max_tokens=n + speech, speech_tokens_per_second=10)
    with pytest.raises(DataError, match=f"transcript is {n} tokens, more than the {n - 1}"):
        validate(utts, tokenizer=tok, max_tokens=n + speech - 1, speech_tokens_per_second=10)
    # The 2024 reference's 30 s padding reserves 300 tokens whatever the audio.
    with pytest.raises(DataError, match="more than the"):
        validate(
            utts,
            tokenizer=tok,
            max_tokens=n + speech,
            speech_tokens_per_second=10,
            fixed_speech_seconds=30.0,
        )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20), max_size=6)
)
def test_kaldi_table_parses_or_raises_documented_error(tmp_path_factory, lines):
    from west.data.dataset import read_kaldi_table

    path = tmp_path_factory.mktemp("k") / "wav.scp"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        table = read_kaldi_table(path)
    except DataError as e:
        assert str(path) in str(e)
    else:
        for key, (line, value) in table.items():
            assert key and not any(c.isspace() for c in key) and value and line >= 1


def test_long_audio_cut_when_asked(tmp_path, caplog):
    from west.data.dataset import SpeechDataset

    wav = tmp_path / "long.wav"
    sf.write(wav, np.full(16000 * 31, 0.1, dtype=np.float32), 16000)
    path = _jsonl(tmp_path, [json.dumps({"key": "long", "wav": str(wav), "txt": "x"})])
    with pytest.raises(DataError, match="31.00 s, longer than"):
        validate(read_jsonl(path))
    with caplog.at_level("WARNING"):
        utts = validate(read_jsonl(path), cut_long=True)
    assert f"{path}:1 (key long)" in caplog.text and "cut to 30 s" in caplog.text
    assert utts[0].duration == utts[0].cut_seconds == 30.0
    assert SpeechDataset(utts, 80)[0]["mel"].shape == (80, 3000)
