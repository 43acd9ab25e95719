"""FLOPs a SpeechLLM executes, counted from the shapes its parts receive, and the floor.

Hooks on the encoder, projector, LLM decoder and output layer count matmuls as
2 x weights x positions and attention as 4 x queries x keys x width per layer (masked positions
included, as a dense kernel computes them); backward as one more forward for the frozen LLM
(input gradients only) and two more for the projector. The floor ("needed") is the same
formulas on the real content only: encoder on the real frames, LLM on prompt + real speech
tokens + transcript, output layer on the positions that are scored or generated, beams sharing
one prefill; in decoding, the prompt's shared start once for the whole run and the tokens each
path generated.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import torch

from west.models.speech_llm import SpeechLLM


class FlopMeter:
    """FLOPs executed, per label, from the shapes the model's parts receive (see module doc)."""

    def __init__(self, model: SpeechLLM):
        self.model = model
        enc = model.encoder
        self.n_mels, self.enc_dim = enc.n_mels, enc.output_dim
        self.enc_layers = len(enc.blocks)  # frozen blocks
        self.top_layers = len(model.encoder_top.blocks) if model.encoder_top is not None else 0
        self.proj_weights = sum(p.numel() for p in model.projector.parameters() if p.dim() > 1)
        base = model.llm.get_base_model() if hasattr(model.llm, "get_base_model") else model.llm
        self.decoder = base.get_decoder()
        self.lm_head = base.get_output_embeddings()
        cfg = base.config
        head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.attn_width = cfg.num_attention_heads * head_dim
        self.llm_layers = cfg.num_hidden_layers
        self.dec_weights = sum(
            m.weight.numel() for m in self.decoder.modules() if isinstance(m, torch.nn.Linear)
        )
        self.head_weights = self.lm_head.weight.numel()
        self.ds_rate = model.config.encoder_projector_ds_rate
        self.label: str | None = None
        self.executed: dict[str, float] = defaultdict(float)
        self.llm_positions: dict[str, int] = defaultdict(int)
        self._handles: list = []

    # analytic costs (forward) ------------------------------------------------------------
    def encoder(self, mel_frames: int, top: bool = True) -> float:
        """Forward FLOPs of the frozen encoder (and of its trained top blocks if `top`)."""
        t = (mel_frames + 1) // 2
        d = self.enc_dim
        convs = 2 * 3 * mel_frames * self.n_mels * d + 2 * 3 * t * d * d
        layers = self.enc_layers + (self.top_layers if top else 0)
        return float(convs + layers * self.encoder_block(t))

    def encoder_block(self, t: int) -> float:
        d = self.enc_dim
        return float(2 * 12 * d * d * t + 4 * t * t * d)

    def projector(self, tokens: int) -> float:
        return 2.0 * self.proj_weights * tokens

    def llm(self, new: int, context: int) -> float:
        """Decoder layers for `new` positions attending to `context` keys (no output layer)."""
        return (
            2.0 * self.dec_weights * new + 4.0 * new * context * self.attn_width * self.llm_layers
        )

    def head(self, rows: int) -> float:
        return 2.0 * self.head_weights * rows

    # hooks --------------------------------------------------------------------------------
    def _add(self, flops: float) -> None:
        if self.label is not None:
            self.executed[self.label] += flops

    def _on_encoder(self, module, args, kwargs):
        mel = args[0] if args else kwargs["mel"]
        self._add(mel.shape[0] * self.encoder(mel.shape[-1], top=False))

    def _on_encoder_top(self, module, args, kwargs):
        b, t = args[0].shape[:2]
        grad = torch.is_grad_enabled()
        self._add((3.0 if grad else 1.0) * b * self.top_layers * self.encoder_block(t))

    def _on_projector(self, module, args, output):
        b, n = output[0].shape[:2]
        grad = torch.is_grad_enabled()
        self._add((3.0 if grad else 1.0) * b * self.projector(n))

    def _on_decoder(self, module, args, kwargs):
        x = kwargs.get("inputs_embeds")
        if x is None:
            x = kwargs.get("input_ids", args[0] if args else None)
        b, new = x.shape[:2]
        # transformers 5 hands the KV cache over as `cache` (`past_key_values` before).
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = cache.get_seq_length() if cache is not None else 0
        matmul = 2.0 * self.dec_weights * new
        attn = 4.0 * new * (past + new) * self.attn_width * self.llm_layers
        if torch.is_grad_enabled():  # backward: input gradients only (frozen weights)
            matmul, attn = 2 * matmul, 3 * attn
        self._add(b * (matmul + attn))
        if self.label is not None:
            self.llm_positions[self.label] += b * new

    def _on_head(self, module, args, output):
        rows = args[0].numel() // args[0].shape[-1]
        self._add((2.0 if torch.is_grad_enabled() else 1.0) * self.head(rows))

    def __enter__(self) -> FlopMeter:
        m = self.model
        self._handles = [
            m.encoder.register_forward_pre_hook(self._on_encoder, with_kwargs=True),
            m.projector.register_forward_hook(self._on_projector),
            self.decoder.register_forward_pre_hook(self._on_decoder, with_kwargs=True),
            self.lm_head.register_forward_hook(self._on_head),
        ]
        if m.encoder_top is not None:
            hook = m.encoder_top.register_forward_pre_hook(self._on_encoder_top, with_kwargs=True)
            self._handles.append(hook)
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()

    @contextlib.contextmanager
    def track(self, label: str):
        self.label = label
        try:
            yield
        finally:
            self.label = None

    # floors -----------------------------------------------------------------------------
    def train_needed(self, mel_frames: int, prompt: int, text: int) -> float:
        n = ((mel_frames + 1) // 2) // self.ds_rate
        length = prompt + n + text + 1
        return (
            self.encoder(mel_frames)
            + 2 * self.top_layers * self.encoder_block((mel_frames + 1) // 2)  # its backward
            + 3 * self.projector(n)
            + 2 * 2.0 * self.dec_weights * length
            + 3 * 4.0 * length * length * self.attn_width * self.llm_layers
            + 2 * self.head(text + 1)
        )

    def decode_needed(
        self, mel_frames: int, shared: int, own: int, generated: int, beams: int
    ) -> float:
        """One utterance after the `shared` prompt start (read once for all, `shared_needed`):
        its `own` prompt tokens and speech, `generated` tokens (the first from the prefill),
        `beams` hypotheses."""
        n = ((mel_frames + 1) // 2) // self.ds_rate
        context = shared + own + n
        steps = sum(self.llm(1, context + g + 1) + self.head(1) for g in range(generated - 1))
        return (
            self.encoder(mel_frames)
            + self.projector(n)
            + self.llm(own + n, context)
            + self.head(1)
            + beams * steps
        )

    def shared_needed(self, shared: int) -> float:
        """The prompt start every utterance shares: read once for a whole decoding run."""
        return self.llm(shared, shared)
