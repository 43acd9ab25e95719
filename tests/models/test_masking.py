"""SpecAugment-style masking of the encoder's output (west.models.masking, `speech_masking`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from west.config import MaskConf, ModelArguments
from west.models.build import build_model
from west.models.masking import mask_frames


def spans(row: torch.Tensor) -> list[tuple[int, int]]:
    """[start, end) runs of True in a 1-D bool tensor."""
    out, start = [], None
    for i, v in enumerate(row.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    return out


def test_off_by_default_returns_the_frames_untouched():
    x = torch.randn(2, 40, 16)
    assert not MaskConf().active
    assert mask_frames(x, torch.tensor([40, 20]), MaskConf()) is x


def test_time_masks_zero_whole_frames_inside_each_utterance():
    torch.manual_seed(0)
    conf = MaskConf(time_masks=2, time_width=8, max_time_share=0.5)
    x = torch.randn(3, 60, 16) + 5  # no frame is zero by chance
    lens = torch.tensor([60, 30, 12])
    y = mask_frames(x, lens, conf)
    zero = (y == 0).all(dim=-1)  # (B, T): whole frames
    assert ((y == 0) == zero.unsqueeze(-1)).all()  # nothing masked but whole frames
    assert torch.equal(y[~zero], x[~zero])
    for i, n in enumerate(lens.tolist()):
        assert not zero[i, n:].any()  # padding left alone
        runs = spans(zero[i])
        assert len(runs) <= 2  # two masks (they may touch or overlap)
        assert sum(e - s for s, e in runs) <= 2 * min(8, int(n * 0.5))
    assert zero.any()


def test_channel_masks_zero_whole_channels_per_utterance():
    torch.manual_seed(0)
    conf = MaskConf(channel_masks=1, channel_width=6)
    x = torch.randn(4, 20, 32) + 5
    y = mask_frames(x, torch.full((4,), 20), conf)
    zero = (y == 0).all(dim=1)  # (B, D): whole channels
    assert ((y == 0) == zero.unsqueeze(1)).all()
    for i in range(4):
        runs = spans(zero[i])
        assert len(runs) <= 1 and sum(e - s for s, e in runs) <= 6
    assert zero.any()
    assert not torch.equal(zero[0], zero[1]) or not torch.equal(zero[2], zero[3])


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="speech_masking: unknown keys \\['time_mask'\\]"):
        ModelArguments(speech_masking={"time_mask": 2})
    with pytest.raises(ValueError, match="time_width must be a number >= 0"):
        ModelArguments(speech_masking='{"time_masks": 2, "time_width": -1}')


def test_model_masks_in_training_only(model_args):
    config = dataclasses.replace(
        model_args, speech_masking={"time_masks": 4, "time_width": 20, "max_time_share": 0.5}
    )
    torch.manual_seed(0)
    model = build_model(config)
    enc = torch.randn(2, 100, model.encoder.dims.n_state)  # what the encoder cache holds
    lens = torch.tensor([100, 80])
    model.eval()
    a, _ = model.speech_embeddings(enc=enc, enc_lens=lens)
    b, _ = model.speech_embeddings(enc=enc, enc_lens=lens)
    assert torch.equal(a, b)  # no masking: deterministic
    model.train()
    model.projector.eval()  # the projector's own dropout off: only the masks differ
    c, _ = model.speech_embeddings(enc=enc, enc_lens=lens)
    assert not torch.allclose(a, c)
