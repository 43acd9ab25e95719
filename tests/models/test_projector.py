"""Projectors: shapes, lengths, the 2024 reference's parameter counts, the registry and its
`projector_conf`."""

from __future__ import annotations

import pytest
import torch

from west.models.build import count_params
from west.models.projector import Conv1dProjector, build_projector


@pytest.mark.parametrize(
    ("encoder_dim", "llm_dim", "reference_mib"),
    [(384, 4096, 9.46), (768, 4096, 12.32), (1280, 4096, 18.32), (384, 1536, 4.46)],
)
def test_conv1d_parameter_count_matches_reference_table(encoder_dim, llm_dim, reference_mib):
    """The 2024 reference's table counts parameters in units of 2**20: Whisper tiny + LLaMA 3 8B = 9.46M."""
    projector = Conv1dProjector(encoder_dim, llm_dim, ds_rate=5, hidden_size=2048)
    assert round(count_params(projector) / 2**20, 2) == reference_mib


@pytest.mark.parametrize("name", ["conv1d", "linear", "transformer"])
def test_shapes_and_lengths(name):
    projector = build_projector(name, 64, 96, ds_rate=5, hidden_size=32)
    x = torch.randn(2, 23, 64)
    y, lens = projector(x, torch.tensor([23, 11]))
    assert y.shape == (2, 4, 96)
    assert lens.tolist() == [4, 2]


@pytest.mark.parametrize("name", ["conv1d", "linear", "transformer"])
def test_outputs_on_real_frames_ignore_padding(name):
    projector = build_projector(name, 8, 16, ds_rate=3, hidden_size=8).eval()
    x = torch.randn(1, 10, 8)
    padded = torch.cat([x, torch.randn(1, 5, 8)], dim=1)
    a, n = projector(x, torch.tensor([10]))
    b, _ = projector(padded, torch.tensor([10]))
    torch.testing.assert_close(a[0, : int(n)], b[0, : int(n)])


def test_transformer_rows_of_a_batch_match_alone():
    """Attention is masked: an utterance gives the same vectors alone and in a padded batch,
    and positions past its length are zero."""
    torch.manual_seed(0)
    projector = build_projector("transformer", 64, 32, ds_rate=2, hidden_size=48).eval()
    x = torch.randn(3, 40, 64)
    lens = torch.tensor([40, 25, 9])
    y, out_lens = projector(x, lens)
    assert out_lens.tolist() == [20, 12, 4]
    for i in range(3):
        n = int(lens[i])
        alone, m = projector(x[i : i + 1, :n], lens[i : i + 1])
        torch.testing.assert_close(y[i, : int(m)], alone[0], atol=1e-5, rtol=1e-5)
        assert y[i, int(m) :].abs().sum() == 0
    y.sum().backward()
    assert projector.layers.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0


def test_unknown_projector_lists_known():
    with pytest.raises(ValueError, match=r"known: \['conv1d', 'linear', 'transformer'\]"):
        build_projector("qformer", 8, 8, 5, 8)


def test_projector_conf_sets_the_constructor_arguments():
    projector = build_projector(
        "transformer", 64, 32, 2, 48, {"num_layers": 3, "dropout": 0.0, "num_heads": 8}
    )
    assert len(projector.layers.layers) == 3
    layer = projector.layers.layers[0]
    assert layer.self_attn.num_heads == 8 and layer.dropout.p == 0.0
    assert build_projector("transformer", 64, 32, 2, 48).layers.layers[0].self_attn.num_heads == 1


def test_projector_conf_refuses_unknown_keys_and_names_the_allowed():
    with pytest.raises(
        ValueError,
        match=r"unknown keys \['layers'\] for projector 'transformer'; "
        r"allowed: \['num_layers', 'dropout', 'num_heads'\]",
    ):
        build_projector("transformer", 64, 32, 2, 48, {"layers": 3})
    with pytest.raises(
        ValueError, match=r"unknown keys \['hidden_size'\].*--projector_hidden_size"
    ):
        build_projector("conv1d", 64, 32, 2, 48, {"hidden_size": 3})
