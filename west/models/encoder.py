"""Whisper speech encoder that runs on the real frames of each utterance.

openai-whisper's `AudioEncoder` and transformers' `WhisperEncoder` both insist on
30 s of input (3000 mel frames). `WhisperEncoder` here holds the same weights under
openai-whisper's parameter names, slices the positional embedding to the real
length and masks padded frames in the convolutions and in self-attention, so an
utterance gives the same output alone or in a padded batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from west.data.audio import HOP_LENGTH, SAMPLE_RATE


@dataclass
class EncoderDims:
    n_mels: int
    n_ctx: int  # encoder frames Whisper accepts: 1500 = 30 s
    n_state: int
    n_head: int
    n_layer: int


class _Attention(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B, T, D); mask: (B, 1, 1, T) bool, True where a key may be attended."""
        b, t, d = x.shape
        q, k, v = (
            proj(x).view(b, t, self.n_head, d // self.n_head).transpose(1, 2)
            for proj in (self.query, self.key, self.value)
        )
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out(a.transpose(1, 2).reshape(b, t, d))


class _Block(nn.Module):
    def __init__(self, n_state: int, n_head: int):
        super().__init__()
        self.attn = _Attention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.mlp = nn.Sequential(
            nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state)
        )
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = x + self.attn(self.attn_ln(x), mask)
        return x + self.mlp(self.mlp_ln(x))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder with variable-length, masked batches."""

    def __init__(self, dims: EncoderDims):
        super().__init__()
        self.dims = dims
        self.conv1 = nn.Conv1d(dims.n_mels, dims.n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(dims.n_state, dims.n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(dims.n_ctx, dims.n_state))
        self.blocks = nn.ModuleList(_Block(dims.n_state, dims.n_head) for _ in range(dims.n_layer))
        self.ln_post = nn.LayerNorm(dims.n_state)

    @property
    def output_dim(self) -> int:
        return self.dims.n_state

    @property
    def n_mels(self) -> int:
        return self.dims.n_mels

    @staticmethod
    def output_lengths(mel_lens: torch.Tensor) -> torch.Tensor:
        """Encoder frames for `mel_lens` mel frames (conv2 has stride 2, padding 1)."""
        return (mel_lens + 1) // 2

    def forward(
        self, mel: torch.Tensor, mel_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """mel: (B, n_mels, T), zero beyond `mel_lens`; returns (B, T', D) and lengths (B,).

        Frames beyond each length are zero in the output.
        """
        t = mel.shape[-1]
        frame_mask = torch.arange(t, device=mel.device)[None] < mel_lens[:, None]  # (B, T)
        x = mel * frame_mask[:, None, :].to(mel.dtype)
        x = F.gelu(self.conv1(x))
        # Zero conv1's output on padded frames so conv2 sees what a lone utterance sees.
        x = x * frame_mask[:, None, :].to(x.dtype)
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (B, T', D)
        lens = self.output_lengths(mel_lens)
        t_out = x.shape[1]
        if t_out > self.dims.n_ctx:
            seconds = t_out * 2 * HOP_LENGTH / SAMPLE_RATE
            raise ValueError(
                f"input of {t_out} encoder frames ({seconds:.1f} s) is longer "
                f"than the encoder accepts ({self.dims.n_ctx} frames, 30 s)"
            )
        x = x + self.positional_embedding[:t_out].to(x.dtype)
        return run_blocks(self.blocks, self.ln_post, x, lens), lens

    def split(self, top_layers: int) -> EncoderTop:
        """Move the last `top_layers` blocks and the final LayerNorm into an `EncoderTop`.

        What stays here (conv stem and the first blocks) can stay frozen and be cached, the
        top is trained: adapting the last blocks to a new domain costs a fraction of the
        encoder and keeps the encoder cache.
        """
        n = len(self.blocks)
        if not 0 < top_layers <= n:
            raise ValueError(f"encoder_trainable_layers must be in 1..{n}, got {top_layers}")
        top = EncoderTop(self.blocks[n - top_layers :], self.ln_post)
        self.blocks = self.blocks[: n - top_layers]
        self.ln_post = nn.Identity()
        self.dims = EncoderDims(**{**self.dims.__dict__, "n_layer": n - top_layers})
        return top


class EncoderTop(nn.Module):
    """The last blocks and final LayerNorm of a Whisper encoder, run on the frames below them."""

    def __init__(self, blocks: nn.ModuleList, ln_post: nn.Module):
        super().__init__()
        self.blocks = blocks
        self.ln_post = ln_post

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return run_blocks(self.blocks, self.ln_post, x, lens), lens


def run_blocks(
    blocks: nn.ModuleList, ln_post: nn.Module, x: torch.Tensor, lens: torch.Tensor
) -> torch.Tensor:
    """x (B, T', D) through the blocks (padded frames masked as keys) and the final norm;
    frames beyond each length are zero in the output."""
    mask = torch.arange(x.shape[1], device=x.device)[None] < lens[:, None]  # (B, T')
    attn_mask = None if bool(mask.all()) else mask[:, None, None, :]
    for block in blocks:
        x = block(x, attn_mask)
    return ln_post(x) * mask[..., None].to(x.dtype)


def load_openai_whisper(name_or_path: str) -> WhisperEncoder:
    """Encoder of an openai-whisper model: a name (`tiny`, `large-v3`) or a .pt checkpoint.

    The decoder's weights are dropped at load time: they are dead memory here.
    """
    path = Path(name_or_path)
    if not path.is_file():
        import whisper  # names are resolved (and downloaded once) by openai-whisper

        if name_or_path not in whisper._MODELS:
            raise FileNotFoundError(
                f"{name_or_path}: not a file and not an openai-whisper model name; "
                f"expected a .pt checkpoint or one of {sorted(whisper._MODELS)}"
            )
        root = os.path.join(os.path.expanduser("~"), ".cache", "whisper")
        path = Path(whisper._download(whisper._MODELS[name_or_path], root, in_memory=False))
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if "dims" not in checkpoint or "model_state_dict" not in checkpoint:
        raise ValueError(
            f"{path}: expected an openai-whisper checkpoint with 'dims' and 'model_state_dict'"
        )
    d = checkpoint["dims"]
    dims = EncoderDims(
        d["n_mels"], d["n_audio_ctx"], d["n_audio_state"], d["n_audio_head"], d["n_audio_layer"]
    )
    state = {
        k[len("encoder.") :]: v
        for k, v in checkpoint["model_state_dict"].items()
        if k.startswith("encoder.")
    }
    encoder = WhisperEncoder(dims)
    encoder.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return encoder


_HF_NAMES = {
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
    "final_layer_norm": "mlp_ln",
}


def load_hf_whisper(folder: str) -> WhisperEncoder:
    """Encoder of a transformers Whisper folder (`WhisperModel` / `WhisperForConditionalGeneration`)."""
    from transformers import WhisperConfig, WhisperModel

    config = WhisperConfig.from_pretrained(folder)
    hf_encoder = WhisperModel.from_pretrained(folder, dtype=torch.float32).get_encoder()
    dims = EncoderDims(
        config.num_mel_bins,
        config.max_source_positions,
        config.d_model,
        config.encoder_attention_heads,
        config.encoder_layers,
    )
    state = {}
    for name, tensor in hf_encoder.state_dict().items():
        if name == "embed_positions.weight":
            state["positional_embedding"] = tensor
            continue
        if name.startswith("layer_norm."):
            state["ln_post." + name.split(".", 1)[1]] = tensor
            continue
        if name.startswith("layers."):
            _, idx, rest = name.split(".", 2)
            module, param = rest.rsplit(".", 1)
            name = f"blocks.{idx}.{_HF_NAMES[module]}.{param}"
        state[name] = tensor
    encoder = WhisperEncoder(dims)
    encoder.load_state_dict(state, strict=True)
    return encoder


def _auto(name_or_path: str) -> WhisperEncoder:
    if (Path(name_or_path) / "config.json").is_file():
        return load_hf_whisper(name_or_path)
    return load_openai_whisper(name_or_path)


ENCODERS = {"auto": _auto, "whisper": load_openai_whisper, "hf_whisper": load_hf_whisper}


def build_encoder(encoder_type: str, name_or_path: str) -> WhisperEncoder:
    if encoder_type not in ENCODERS:
        raise ValueError(f"unknown encoder_type {encoder_type!r}; known: {sorted(ENCODERS)}")
    return ENCODERS[encoder_type](name_or_path)
