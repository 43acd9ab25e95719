"""The variable-length Whisper encoder against openai-whisper's and transformers' own."""

from __future__ import annotations

import pytest
import torch

from west.data.audio import load_audio, log_mel
from west.models.encoder import build_encoder, load_hf_whisper, load_openai_whisper


@pytest.fixture(scope="module")
def mels(speech_dir):
    return [log_mel(load_audio(speech_dir / f"utt{i}.wav")) for i in range(3)]


def _batch(mels):
    lens = torch.tensor([m.shape[-1] for m in mels])
    batch = torch.zeros(len(mels), mels[0].shape[0], int(lens.max()))
    for i, m in enumerate(mels):
        batch[i, :, : m.shape[-1]] = m
    return batch, lens


def test_matches_openai_whisper_on_30s_input(tiny_whisper, speech_dir):
    import whisper

    reference = whisper.load_model(str(tiny_whisper), device="cpu").encoder.eval()
    encoder = load_openai_whisper(str(tiny_whisper)).eval()
    mel = log_mel(load_audio(speech_dir / "utt0.wav"), pad_to_30s=True)[None]
    with torch.no_grad():
        expected = reference(mel)
        got, lens = encoder(mel, torch.tensor([mel.shape[-1]]))
    assert got.shape == expected.shape == (1, 1500, 64)
    assert lens.tolist() == [1500]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_batch_equals_single_on_real_frames(tiny_whisper, mels):
    encoder = load_openai_whisper(str(tiny_whisper)).eval()
    batch, lens = _batch(mels)
    assert len(set(lens.tolist())) == 3, "fixture utterances should differ in length"
    with torch.no_grad():
        out, out_lens = encoder(batch, lens)
        for i, m in enumerate(mels):
            single, n = encoder(m[None], torch.tensor([m.shape[-1]]))
            assert int(n) == int(out_lens[i]) == (m.shape[-1] + 1) // 2
            torch.testing.assert_close(out[i, : int(n)], single[0], atol=1e-5, rtol=1e-5)
            assert out[i, int(n) :].abs().sum() == 0  # padded frames are zeroed


def test_variable_length_differs_from_padding(tiny_whisper, mels):
    """Sanity: the real-frame output is not just a slice of the 30 s-padded output."""
    encoder = load_openai_whisper(str(tiny_whisper)).eval()
    m = mels[0]
    padded = torch.zeros(1, 80, 3000)
    padded[..., : m.shape[-1]] = m
    with torch.no_grad():
        short, n = encoder(m[None], torch.tensor([m.shape[-1]]))
        long, _ = encoder(padded, torch.tensor([3000]))
    assert not torch.allclose(short[0], long[0, : int(n)], atol=1e-3)


def test_rejects_input_longer_than_30s(tiny_whisper):
    encoder = load_openai_whisper(str(tiny_whisper))
    with pytest.raises(ValueError, match="longer than the encoder accepts"):
        encoder(torch.zeros(1, 80, 3002), torch.tensor([3002]))


def test_hf_whisper_folder_matches_transformers(tmp_path, mels):
    from transformers import WhisperConfig, WhisperModel

    config = WhisperConfig(
        num_mel_bins=80,
        d_model=64,
        encoder_layers=2,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=256,
        decoder_ffn_dim=256,
        vocab_size=100,
        max_source_positions=1500,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    torch.manual_seed(0)
    WhisperModel(config).save_pretrained(tmp_path)
    encoder = build_encoder("auto", str(tmp_path)).eval()
    assert isinstance(encoder, type(load_hf_whisper(str(tmp_path))))
    reference = WhisperModel.from_pretrained(tmp_path).get_encoder().eval()
    padded = torch.zeros(1, 80, 3000)
    padded[..., : mels[1].shape[-1]] = mels[1]
    with torch.no_grad():
        expected = reference(padded).last_hidden_state
        got, _ = encoder(padded, torch.tensor([3000]))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_unknown_encoder_lists_known():
    with pytest.raises(ValueError, match="known: .*hf_whisper"):
        build_encoder("wav2vec9", "x")


def test_unknown_model_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an openai-whisper model name"):
        load_openai_whisper(str(tmp_path / "nope.pt"))
