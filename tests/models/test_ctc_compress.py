"""CTC compression: blank frames dropped, runs of one label averaged, per utterance."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from west.models.ctc_compress import ctc_compress


def _logits(labels: list[int], vocab: int = 5) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(labels), vocab).float() * 10


def test_drops_blanks_and_averages_runs():
    blank = 4
    labels = [4, 1, 1, 4, 4, 2, 1, 1, 1, 4]
    frames = torch.arange(10, dtype=torch.float)[:, None].repeat(1, 3)
    out, lens = ctc_compress(frames[None], torch.tensor([10]), _logits(labels)[None], blank)
    # runs of non-blank labels: frames [1, 2] -> 1.5, [5] -> 5, [6, 7, 8] -> 7
    assert lens.tolist() == [3]
    assert out[0, :, 0].tolist() == [1.5, 5.0, 7.0]


def test_repeated_label_split_by_blank_stays_two_tokens():
    blank = 4
    labels = [1, 4, 1, 2]
    frames = torch.tensor([[1.0], [9.0], [3.0], [5.0]])
    out, lens = ctc_compress(frames[None], torch.tensor([4]), _logits(labels)[None], blank)
    assert lens.tolist() == [3]
    assert out[0, :, 0].tolist() == [1.0, 3.0, 5.0]


def test_batch_respects_lengths_and_all_blank_keeps_one_frame():
    blank = 4
    logits = torch.stack([_logits([1, 2, 4, 4]), _logits([4, 4, 4, 3])])
    logits[1, 3] = _logits([4])[0]  # second utterance is all blank within its length
    logits[1, 1, 2] = 5.0  # its most token-like frame is 1
    frames = torch.randn(2, 4, 6)
    out, lens = ctc_compress(frames, torch.tensor([4, 3]), logits, blank)
    assert lens.tolist() == [2, 1]
    torch.testing.assert_close(out[1, 0], frames[1, 1])
    assert out.shape == (2, 2, 6) and out[1, 1].abs().sum() == 0


def test_soft_table_gives_token_embeddings():
    blank = 4
    table = torch.randn(5, 8)
    out, lens = ctc_compress(
        torch.zeros(1, 3, 8), torch.tensor([3]), _logits([2, 4, 3])[None] * 10, blank, table
    )
    assert lens.tolist() == [2]
    torch.testing.assert_close(out[0], table[[2, 3]], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mode", ["ctc", "ctc_soft"])
def test_compressed_model_trains_and_decodes_batch_equal_single(model_args, speech_dir, mode):
    from west.data.batching import collate
    from west.data.dataset import SpeechDataset, read_data, validate
    from west.models.build import build_model

    torch.manual_seed(0)
    model = build_model(dataclasses.replace(model_args, ctc_weight=1.0, speech_compression=mode))
    utts = validate(read_data(str(speech_dir / "data.jsonl")))
    ds = SpeechDataset(utts, 80, model.tokenizer)
    batch = collate([ds[i] for i in range(3)])
    out = model(**batch)
    out["loss"].backward()
    assert model.projector.linear2.weight.grad is not None
    model.eval()
    texts = model.generate(batch["mel"], batch["mel_lens"], max_new_tokens=5)
    for i in range(3):
        n = int(batch["mel_lens"][i])
        assert model.generate(
            batch["mel"][i : i + 1, :, :n], batch["mel_lens"][i : i + 1], max_new_tokens=5
        ) == [texts[i]]


def test_compression_needs_ctc(model_args):
    from west.models.build import build_model

    with pytest.raises(ValueError, match="needs the CTC branch"):
        build_model(dataclasses.replace(model_args, speech_compression="ctc"))
