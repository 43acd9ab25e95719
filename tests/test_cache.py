"""Encoder-output cache: same loss as the uncached path, invalidated by new audio or encoder."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest
import torch
from conftest import synthesize

from west.bin.train import build_data
from west.config import DataArguments, TrainingArguments
from west.data.batching import collate
from west.data.cache import EncoderCache, build_cache, fill_cache, prepare_cache
from west.data.dataset import DataError, SpeechDataset, read_data, validate
from west.models.build import build_model


@pytest.fixture(scope="module")
def model(model_args):
    torch.manual_seed(0)
    return build_model(model_args).eval()


@pytest.fixture()
def utts(speech_dir, tmp_path):
    """The speech fixture's utterances, with their audio copied (tests rewrite it)."""
    audio = tmp_path / "audio"
    audio.mkdir()
    out = validate(read_data(str(speech_dir / "data.jsonl")))
    for u in out:
        u.wav = str(shutil.copy(u.wav, audio))
    return out


def _batches(model, utts, cache, pad_to_30s=False):
    """The same four utterances, from audio and from the cache."""
    n_mels, tok = model.encoder.n_mels, model.tokenizer
    plain = SpeechDataset(utts, n_mels, tok, pad_to_30s)
    cached = SpeechDataset(utts, n_mels, tok, pad_to_30s, cache=cache)
    return collate([plain[i] for i in range(4)]), collate([cached[i] for i in range(4)])


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-5), ("float16", 2e-3)])
def test_cached_loss_equals_uncached(model, utts, tmp_path, dtype, tol):
    cache = EncoderCache.for_encoder(tmp_path / "cache", model.encoder, False, dtype=dtype)
    assert fill_cache(cache, model.encoder, utts, pad_to_30s=False, batch_size=4) == len(utts)
    plain, cached = _batches(model, utts, cache)
    assert "mel" not in cached and cached["enc"].dtype == torch.float32
    enc, lens = model.encode(plain["mel"], plain["mel_lens"])
    assert torch.equal(lens, cached["enc_lens"])
    torch.testing.assert_close(cached["enc"], enc, rtol=tol, atol=tol)
    with torch.no_grad():
        a, b = model(**plain)["loss"], model(**cached)["loss"]
    assert float(b) == pytest.approx(float(a), rel=tol)
    # Gradients reach the projector the same way.
    grads = []
    for batch in (plain, cached):
        model.zero_grad()
        model(**batch)["loss"].backward()
        grads.append(model.projector.linear2.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=50 * tol, atol=50 * tol)
    model.zero_grad()


def test_cache_of_30s_padded_input_is_separate(model, utts, tmp_path):
    padded = EncoderCache.for_encoder(tmp_path, model.encoder, pad_to_30s=True)
    plain = EncoderCache.for_encoder(tmp_path, model.encoder, pad_to_30s=False)
    assert padded.root != plain.root
    fill_cache(padded, model.encoder, utts[:2], pad_to_30s=True)
    assert plain.missing(utts[:2]) == utts[:2]
    assert padded.load(utts[0]).shape == (1500, model.encoder.output_dim)
    assert json.loads((padded.root / "cache.json").read_text())["pad_to_30s"] is True


def test_rewritten_or_touched_audio_is_recomputed(model, utts, tmp_path):
    cache = EncoderCache.for_encoder(tmp_path / "cache", model.encoder, False)
    fill_cache(cache, model.encoder, utts, pad_to_30s=False)
    assert cache.missing(utts) == []
    before = cache.load(utts[0])
    synthesize("an entirely different sentence, spoken slowly", utts[0].wav, speed=120)
    assert cache.missing(utts) == [utts[0]]
    with pytest.raises(DataError, match=r"no cached encoder output for .*utt0.wav"):
        SpeechDataset(utts, model.encoder.n_mels, cache=cache)[0]
    assert fill_cache(cache, model.encoder, utts, pad_to_30s=False) == 1
    assert cache.load(utts[0]).shape != before.shape
    # Same bytes, new modification time: recomputed too (the key cannot see the content).
    st = os.stat(utts[1].wav)
    os.utime(utts[1].wav, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert cache.missing(utts) == [utts[1]]


def test_changed_encoder_gets_a_new_cache(model_args, utts, tmp_path):
    encoder = build_model(model_args).encoder
    cache = EncoderCache.for_encoder(tmp_path, encoder, False)
    fill_cache(cache, encoder, utts, pad_to_30s=False)
    with torch.no_grad():
        encoder.blocks[0].mlp[0].weight[0, 0] += 1e-3  # e.g. a fine-tuned encoder
    changed = EncoderCache.for_encoder(tmp_path, encoder, False)
    assert changed.root != cache.root
    assert changed.missing(utts) == utts
    fill_cache(changed, encoder, utts[:1], pad_to_30s=False)
    assert not torch.equal(changed.load(utts[0]), cache.load(utts[0]))


def test_float16_overflow_is_stored_as_float32(model, utts, tmp_path):
    cache = EncoderCache.for_encoder(tmp_path, model.encoder, False)
    big = torch.full((3, 4), 1e6)
    cache.save(utts[0], big)
    assert torch.equal(cache.load(utts[0]), big)
    cache.save(utts[1], torch.ones(3, 4))
    import numpy as np

    assert np.load(cache.path(utts[1])).dtype == np.float16


def test_build_data_uses_cache_only_for_a_frozen_encoder(model, model_args, speech_dir, tmp_path):
    data = str(speech_dir / "data.jsonl")
    args = TrainingArguments(output_dir=str(tmp_path / "exp"), report_to="none")
    dataset = build_data(model, DataArguments(data, encoder_cache_dir=str(tmp_path)), data, args)
    item = dataset[0]
    assert set(item) == {"key", "enc", "text_ids"}
    assert len(dataset.cache.missing(dataset.utts)) == 0

    unfrozen = build_model(dataclasses.replace(model_args, freeze_encoder=False))
    dataset = build_data(unfrozen, DataArguments(data, encoder_cache_dir=str(tmp_path)), data, args)
    assert dataset.cache is None and "mel" in dataset[0]


def test_auto_cache_dir_is_beside_the_data(model, utts, tmp_path):
    data = tmp_path / "lists" / "train.jsonl"
    data.parent.mkdir()
    data.write_text("")
    cache = build_cache("auto", str(data), model.encoder, utts[:1], pad_to_30s=False)
    assert cache.root.parent == tmp_path / "lists" / "encoder_cache"


def test_training_from_the_cache(model_args, speech_dir, tmp_path):
    """west-train with --encoder_cache_dir: the cache is filled and the steps run from it."""
    from west.bin.train import main

    flags = [
        "--llm_model_name_or_path",
        model_args.llm_model_name_or_path,
        "--whisper_model_name_or_path",
        model_args.whisper_model_name_or_path,
        "--projector_hidden_size",
        "32",
        "--data_path",
        str(speech_dir / "data.jsonl"),
        "--encoder_cache_dir",
        str(tmp_path / "cache"),
        "--output_dir",
        str(tmp_path / "exp"),
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--save_strategy",
        "no",
        "--report_to",
        "none",
    ]
    main(flags)
    assert (tmp_path / "exp" / "model.safetensors").is_file()
    entries = list((tmp_path / "cache").glob("*/*/*.npy"))
    assert len(entries) == 6


def _rank(rank: int, world: int, port: int, whisper: str, utts, root: str) -> None:
    from west.models.encoder import build_encoder

    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    encoder = build_encoder("auto", whisper)
    cache = EncoderCache.for_encoder(root, encoder, False)
    calls = []
    original = cache.save
    cache.save = lambda u, f: (calls.append(u.key), original(u, f))
    prepare_cache(cache, encoder, utts, False, batch_size=2, rank=rank, world_size=world)
    with open(os.path.join(root, f"rank{rank}.json"), "w") as f:
        json.dump(calls, f)
    torch.distributed.destroy_process_group()


def test_two_ranks_share_the_first_pass(model_args, utts, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(
        _rank,
        args=(2, port, model_args.whisper_model_name_or_path, utts, str(tmp_path)),
        nprocs=2,
    )
    done = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert sorted(done[0] + done[1]) == sorted(u.key for u in utts)  # each computed once
    assert len(done[0]) == len(done[1]) == 3
