"""A checkpoint folder of a tiny random model with a CTC branch, as west-train writes one.

Imported by the word-timestamp tests (transcriber, west-transcribe, west-serve); a module
of its own rather than a conftest fixture, like tiny_models.py and server_process.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path


def write_ctc_model_dir(
    model_args, out: Path, texts: Sequence[str], vocab: str = "train", seed: int = 0
) -> Path:
    """Save a seeded random model with a CTC branch over `texts`' tokens (`vocab`) to `out`
    (model.safetensors and west_config.json): nothing trained, so its texts and times are
    garbage, but the same on every run. The LLM reads every projected frame (no CTC
    compression), so the random CTC branch cannot leave it with nothing to read."""
    import torch
    from safetensors.torch import save_file

    from west.models.build import build_model

    config = dataclasses.replace(
        model_args, ctc_conf={"weight": 1.0, "vocab": vocab, "compression": "none"}
    )
    torch.manual_seed(seed)
    model = build_model(config)
    if vocab != "full":
        model.ctc.fit_vocab(model.tokenizer, list(texts))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.trainable_state_dict().items()}
    save_file(state, str(out / "model.safetensors"))
    config.save(out)
    return out
