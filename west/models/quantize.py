"""int8 weights for the LLM's decoding steps on CPU.

A decoding step reads every LLM weight to compute a few rows (the utterances and beams still
running): on CPU it is bound by memory bandwidth, not arithmetic. `Int8Linear` keeps an int8
copy of a Linear layer's weight (one scale per output channel) and, when few rows pass,
multiplies with it directly (torch's `_weight_int8pack_mm`: a quarter of the bytes; the rows
are rounded to bfloat16, the sums kept in float32). Many rows at once (the prefill, a long
batch) are arithmetic-bound and take the float32 weight as before. LoRA adapters are merged
into the weights first, so an adapted layer is one product.

Only the weights are int8; the activations are not quantised (rounded to bfloat16 for the
product). SmolLM2-135M-Instruct's activations reach 2,500 at the input of some `down_proj`
layers where most are below 10: int8 activations with one scale per tensor (torch.ao's dynamic
quantisation) changed its next token at 75 % of the positions of a real text (159 tokens).
Simulated on a chat-formatted text (196 tokens): one scale per tensor 62 %, one per row 16 %,
int8 weights alone 5 %, bfloat16 weights 3 %; `Int8Linear` on it: 6 %
(tests/models/test_quantize.py). The encoder stays in float32 (one int8 scale per tensor for
its activations put some of Whisper tiny.en's frames far off: cosine 0.46).

Up to how many rows the int8 product is faster was measured per layer shape (576 x 1536,
1536 x 576, 576 x 49152), on one core: with AVX-512, 1.2-6 times up to 128 rows; with torch's
kernels limited to AVX2, 1.5-2.3 times up to 4-8 rows and slower from 16. Hence the bound
`int8_rows()`. The float32 weights stay in memory beside the int8 ones (+25 %).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

QUANTIZATIONS = ("none", "int8")


def int8_rows() -> int:
    """At most how many rows take the int8 product (see the module docstring)."""
    return 128 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


class Int8Linear(nn.Module):
    """A Linear layer with an int8 copy of its weight for products of few rows."""

    def __init__(self, linear: nn.Linear, max_rows: int):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight, self.bias = linear.weight, linear.bias
        w = linear.weight.detach().float()
        scale = w.abs().amax(1).clamp(min=1e-12) / 127
        self.register_buffer("qweight", torch.round(w / scale[:, None]).to(torch.int8))
        self.register_buffer("qscale", scale.to(torch.bfloat16))
        self.max_rows = max_rows

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() > self.max_rows * self.in_features:
            return F.linear(x, self.weight, self.bias)
        flat = x.reshape(-1, self.in_features).to(torch.bfloat16)
        y = torch.ops.aten._weight_int8pack_mm(flat, self.qweight, self.qscale)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, int8 up to {self.max_rows} rows"


def merge_lora(llm: nn.Module) -> nn.Module:
    """The LLM with any PEFT LoRA adapters merged into its weights (the plain model)."""
    if hasattr(llm, "merge_and_unload"):
        return llm.merge_and_unload()
    return llm


def quantize_model(model: nn.Module, quantize: str) -> nn.Module:
    """`model` (a SpeechLLM on the CPU, float32, in eval mode) with its LLM's Linear layers
    made Int8Linear (`quantize` "int8"), changed in place and returned; "none" returns it
    as it is."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize {quantize!r}: expected one of {QUANTIZATIONS}")
    if quantize == "none":
        return model
    weight = next(model.llm.parameters())
    if weight.device.type != "cpu" or weight.dtype != torch.float32:
        raise ValueError(
            f"quantize int8 is for float32 models on the CPU, not {weight.dtype} on "
            f"{weight.device.type}; on a GPU decode with --dtype bfloat16 instead"
        )
    if not hasattr(torch.ops.aten, "_weight_int8pack_mm"):
        raise RuntimeError(f"torch {torch.__version__} has no int8 weight product; upgrade torch")
    model.llm = merge_lora(model.llm)
    rows = int8_rows()
    swapped = _swap_linears(model.llm, rows)
    logger.info("int8 weights for %d LLM layers, used up to %d rows at once", swapped, rows)
    return model


def _swap_linears(module: nn.Module, max_rows: int) -> int:
    n = 0
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, Int8Linear(child, max_rows))
            n += 1
        else:
            n += _swap_linears(child, max_rows)
    return n
