"""Projectors: encoder frames (B, T, D_enc) -> LLM input embeddings (B, T // k, D_llm).

Chosen by name from `PROJECTORS`; adding one is a class and a line. Every constructor
argument is settable from a config: `ds_rate` and `hidden_size` by the 2024 reference's
flags (`--encoder_projector_ds_rate`, `--projector_hidden_size`), the others by
`projector_conf` (e.g. `{num_layers: 4, dropout: 0.0}` for the Transformer projector).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn


class Conv1dProjector(nn.Module):
    """The 2024 reference's projector: Conv1d (kernel = stride = k), ReLU, Linear, ReLU, Linear."""

    def __init__(self, encoder_dim: int, llm_dim: int, ds_rate: int = 5, hidden_size: int = 2048):
        super().__init__()
        self.ds_rate = ds_rate
        self.conv1d = nn.Conv1d(encoder_dim, encoder_dim, kernel_size=ds_rate, stride=ds_rate)
        self.linear1 = nn.Linear(encoder_dim, hidden_size)
        self.linear2 = nn.Linear(hidden_size, llm_dim)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, D_enc) -> (B, T // k, D_llm), lengths lens // k."""
        x = self.conv1d(x.transpose(1, 2)).transpose(1, 2)
        x = self.linear2(torch.relu(self.linear1(torch.relu(x))))
        return x, lens // self.ds_rate


class LinearProjector(nn.Module):
    """Stack k consecutive frames, then a 2-layer MLP."""

    def __init__(self, encoder_dim: int, llm_dim: int, ds_rate: int = 5, hidden_size: int = 2048):
        super().__init__()
        self.ds_rate = ds_rate
        self.linear1 = nn.Linear(encoder_dim * ds_rate, hidden_size)
        self.linear2 = nn.Linear(hidden_size, llm_dim)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, d = x.shape
        n = t // self.ds_rate
        x = x[:, : n * self.ds_rate].reshape(b, n, d * self.ds_rate)
        return self.linear2(torch.relu(self.linear1(x))), lens // self.ds_rate


class TransformerProjector(nn.Module):
    """Conv1d down-sampling (kernel = stride = k), then a small Transformer, then Linear.

    The frames see their neighbours before they are mapped into the LLM's space, which the
    frame-wise MLPs cannot do: with a frozen encoder this is where the adaptation to a new
    domain happens. Layers are pre-norm, d_model = the encoder's width, `num_heads` heads
    (default: 64-dim ones), feed-forward `hidden_size`; a depthwise convolution gives the
    relative position.
    """

    def __init__(
        self,
        encoder_dim: int,
        llm_dim: int,
        ds_rate: int = 5,
        hidden_size: int = 2048,
        num_layers: int = 2,
        dropout: float = 0.1,
        num_heads: int | None = None,
    ):
        super().__init__()
        self.ds_rate = ds_rate
        self.conv1d = nn.Conv1d(encoder_dim, encoder_dim, kernel_size=ds_rate, stride=ds_rate)
        self.pos_conv = nn.Conv1d(
            encoder_dim, encoder_dim, kernel_size=3, padding=1, groups=encoder_dim
        )
        layer = nn.TransformerEncoderLayer(
            encoder_dim,
            num_heads or max(1, encoder_dim // 64),
            hidden_size,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.layers = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(encoder_dim)
        self.linear = nn.Linear(encoder_dim, llm_dim)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lens = lens // self.ds_rate
        x = self.conv1d(x.transpose(1, 2))
        valid = torch.arange(x.shape[-1], device=x.device)[None] < lens[:, None]  # (B, N)
        x = x * valid[:, None].to(x.dtype)  # padded frames must not leak through pos_conv
        x = (x + self.pos_conv(x)).transpose(1, 2)
        x = self.layers(x, src_key_padding_mask=~valid)
        # masked_fill, not a product: padded rows may hold NaN after fully masked attention
        return self.linear(self.norm(x)).masked_fill(~valid[..., None], 0.0), lens


PROJECTORS = {
    "conv1d": Conv1dProjector,
    "linear": LinearProjector,
    "transformer": TransformerProjector,
}


# Set by build_projector's own arguments (the flat flags), so not by projector_conf.
FLAT_ARGS = ("encoder_dim", "llm_dim", "ds_rate", "hidden_size")


def build_projector(
    name: str,
    encoder_dim: int,
    llm_dim: int,
    ds_rate: int,
    hidden_size: int,
    conf: dict | None = None,
) -> nn.Module:
    """The projector `name`, its other constructor arguments from `conf` (projector_conf)."""
    if name not in PROJECTORS:
        raise ValueError(f"unknown projector {name!r}; known: {sorted(PROJECTORS)}")
    cls = PROJECTORS[name]
    conf = conf or {}
    allowed = [p for p in inspect.signature(cls).parameters if p not in FLAT_ARGS]
    unknown = sorted(set(conf) - set(allowed))
    if unknown:
        raise ValueError(
            f"projector_conf: unknown keys {unknown} for projector {name!r}; allowed: {allowed} "
            "(ds_rate and hidden_size: --encoder_projector_ds_rate, --projector_hidden_size)"
        )
    return cls(encoder_dim, llm_dim, ds_rate=ds_rate, hidden_size=hidden_size, **conf)
