"""Trained encoder top blocks (`encoder_trainable_layers`) and the restricted CTC vocabulary."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from safetensors.torch import save_file

from west.data.batching import collate
from west.data.cache import EncoderCache, fill_cache
from west.data.dataset import SpeechDataset, read_data, validate
from west.models.build import build_model
from west.models.encoder import load_openai_whisper


@pytest.fixture(scope="module")
def utts(speech_dir):
    return validate(read_data(str(speech_dir / "data.jsonl")))


def _batch(model, utts, n=4, cache=None):
    ds = SpeechDataset(utts, model.encoder.n_mels, model.tokenizer, cache=cache)
    return collate([ds[i] for i in range(n)])


def test_split_encoder_gives_the_whole_encoders_output(tiny_whisper, utts):
    whole = load_openai_whisper(str(tiny_whisper)).eval()
    bottom = load_openai_whisper(str(tiny_whisper)).eval()
    top = bottom.split(1).eval()
    assert len(bottom.blocks) == len(whole.blocks) - 1 and bottom.dims.n_layer == len(bottom.blocks)
    ds = SpeechDataset(utts, whole.n_mels)
    b = collate([ds[i] for i in range(3)])
    with torch.no_grad():
        expected, lens = whole(b["mel"], b["mel_lens"])
        got, got_lens = top(*bottom(b["mel"], b["mel_lens"]))
    assert got_lens.tolist() == lens.tolist()
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=r"encoder_trainable_layers must be in 1\.\.2, got 3"):
        load_openai_whisper(str(tiny_whisper)).split(3)


def test_trained_top_blocks_learn_from_cached_frames(model_args, utts, tmp_path):
    torch.manual_seed(0)
    config = dataclasses.replace(model_args, encoder_trainable_layers=1)
    model = build_model(config)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.encoder_top.parameters())
    cache = EncoderCache.for_encoder(tmp_path / "cache", model.encoder, False)
    fill_cache(cache, model.encoder, utts, pad_to_30s=False, batch_size=2)
    plain, cached = _batch(model, utts), _batch(model, utts, cache=cache)
    assert "enc" in cached and "mel" not in cached
    model.eval()
    with torch.no_grad():  # the cache holds the frozen blocks' output: same loss (fp16 store)
        a, b = model(**plain)["loss"], model(**cached)["loss"]
    assert float(a) == pytest.approx(float(b), abs=2e-3)
    model.train()
    model(**cached)["loss"].backward()
    assert model.encoder_top.blocks[0].mlp[0].weight.grad.abs().sum() > 0
    # Saved with the projector; a fresh model loads them and gives the same output.
    with torch.no_grad():
        for p in model.encoder_top.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    state = model.trainable_state_dict()
    assert any(k.startswith("encoder_top.") for k in state)
    save_file(state, str(tmp_path / "model.safetensors"))
    torch.manual_seed(5)
    loaded = build_model(dataclasses.replace(config, projector_model_path=str(tmp_path))).eval()
    model.eval()
    with torch.no_grad():
        assert float(model(**plain)["loss"]) == pytest.approx(
            float(loaded(**plain)["loss"]), abs=1e-6
        )


def test_ctc_over_training_tokens(model_args, utts, tmp_path):
    torch.manual_seed(0)
    config = dataclasses.replace(model_args, ctc_conf={"weight": 1.0, "vocab": "train"})
    model = build_model(config).eval()
    batch = _batch(model, utts)
    seen = sorted(
        {int(i) for row, n in zip(batch["text_ids"], batch["text_lens"]) for i in row[:n]}
    )
    ctc = model.ctc
    ctc.set_tokens(seen)
    speech, lens = model.speech_embeddings(batch["mel"], batch["mel_lens"])
    logits = ctc.logits(speech, model.embed_tokens)
    assert logits.shape[-1] == len(seen) + 1
    # The same loss as scoring the full vocabulary with only these columns kept.
    full = speech.float() @ model.embed_tokens.weight.float().T
    kept = torch.cat([full[..., seen], (speech.float() @ ctc.blank.float())[..., None]], -1)
    index = {t: j for j, t in enumerate(seen)}
    targets = [
        torch.tensor([index[int(t)] for t in r[:n]])
        for r, n in zip(batch["text_ids"], batch["text_lens"])
    ]
    expected = torch.nn.functional.ctc_loss(
        kept.log_softmax(-1).transpose(0, 1),
        torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
        lens,
        batch["text_lens"],
        blank=len(seen),
        zero_infinity=True,
    )
    got = ctc.loss(speech, lens, batch["text_ids"], batch["text_lens"], model.embed_tokens)
    assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    assert ctc.token_ids(torch.tensor([0, len(seen) - 1])).tolist() == [seen[0], seen[-1]]
    # A target token outside the vocabulary is left out, not an error.
    ctc.set_tokens(seen[1:])
    assert torch.isfinite(
        ctc.loss(speech, lens, batch["text_ids"], batch["text_lens"], model.embed_tokens)
    )
    # The vocabulary travels with the trained weights.
    ctc.set_tokens(seen)
    save_file(model.trainable_state_dict(), str(tmp_path / "model.safetensors"))
    loaded = build_model(dataclasses.replace(config, projector_model_path=str(tmp_path))).eval()
    assert loaded.ctc.tokens.tolist() == seen


def test_unknown_ctc_vocab(model_args):
    with pytest.raises(ValueError, match=r"ctc_conf: unknown vocab 'words'; known: \('full'"):
        dataclasses.replace(model_args, ctc_conf={"weight": 1.0, "vocab": "words"})


def test_checkpoint_with_the_old_ctc_names_loads(model_args, tmp_path):
    """Checkpoints written before the CTC branch became `SpeechLLM.ctc` name its tensors
    `ctc_blank` and `ctc_tokens` (the mini recipe's trained models): they load unchanged."""
    torch.manual_seed(0)
    config = dataclasses.replace(model_args, ctc_conf={"weight": 1.0, "vocab": "train"})
    model = build_model(config)
    model.ctc.set_tokens([5, 9, 40])
    with torch.no_grad():
        model.ctc.blank.normal_()
    old_names = {"ctc.blank": "ctc_blank", "ctc.tokens": "ctc_tokens"}
    state = {old_names.get(k, k): v for k, v in model.trainable_state_dict().items()}
    assert {"ctc_blank", "ctc_tokens"} <= set(state)
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = build_model(dataclasses.replace(config, projector_model_path=str(tmp_path)))
    assert loaded.ctc.tokens.tolist() == [5, 9, 40]
    torch.testing.assert_close(loaded.ctc.blank, model.ctc.blank)
    plain = build_model(model_args)
    with pytest.raises(ValueError, match="holds a CTC vocabulary .* has no CTC branch"):
        from west.models.build import load_trained

        load_trained(plain, tmp_path)
