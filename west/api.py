"""Putting a trained model together for use, and decoding data lists with it."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import torch
from tqdm import tqdm

from west.config import CONFIG_NAME, ModelArguments
from west.data.batching import collate
from west.data.dataset import SpeechDataset, Utterance
from west.models.build import build_model
from west.models.speech_llm import SpeechLLM

logger = logging.getLogger(__name__)


def load_model(
    model_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    **overrides,
) -> SpeechLLM:
    """Build a model from a checkpoint folder's `west_config.json` (plus overrides).

    `model_dir` supplies the configuration and the trained weights (`model.safetensors`);
    without it, `overrides` must name the encoder, LLM and projector weights.
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    weights = overrides.get("projector_model_path")
    if model_dir is None and weights and (Path(weights).parent / CONFIG_NAME).is_file():
        # The seed's flags name the weights file; the config saved beside it fills in
        # the rest (projector size, LoRA, prompt) so those need not be repeated.
        model_dir = Path(weights).parent
    config = ModelArguments.load(model_dir) if model_dir else ModelArguments()
    if model_dir and "projector_model_path" not in overrides:
        overrides["projector_model_path"] = str(Path(model_dir) / "model.safetensors")
    config = dataclasses.replace(config, **overrides)
    model = build_model(config, llm_dtype=dtype)
    model.projector.to(dtype)
    model.encoder.to(dtype)
    return model.to(device).eval()


def read_done_keys(path: Path) -> set[str]:
    """Keys already written to a result file (only whole lines count)."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        # A killed writer left half a line: cut it so the file holds only whole lines.
        data = data[: data.rfind(b"\n") + 1]
        path.write_bytes(data)
    return {line.split(maxsplit=1)[0] for line in data.decode("utf-8").splitlines() if line.strip()}


def recognize(
    model: SpeechLLM,
    utts: list[Utterance],
    result_path: str | Path,
    batch_size: int = 8,
    num_beams: int = 1,
    max_new_tokens: int = 200,
    num_workers: int = 0,
) -> dict[str, float]:
    """Decode `utts` into `result_path` as `key text` lines, resuming after a kill.

    Utterances are sorted by duration so batches hold similar lengths; each line is
    written and flushed whole as soon as its batch is decoded.
    """
    result_path = Path(result_path)
    result_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_done_keys(result_path)
    todo = sorted((u for u in utts if u.key not in done), key=lambda u: -u.duration)
    if done:
        logger.info("%s: %d keys already decoded, %d to go", result_path, len(done), len(todo))
    dataset = SpeechDataset(todo, model.encoder.n_mels, pad_to_30s=model.config.pad_to_30s)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, collate_fn=collate, num_workers=num_workers
    )
    device = next(model.projector.parameters()).device
    start, audio_seconds = time.perf_counter(), sum(u.duration for u in todo)
    with (
        open(result_path, "a", encoding="utf-8") as out,
        tqdm(total=len(todo), desc="decode", unit="utt", disable=None) as bar,
    ):
        for batch in loader:
            texts = model.generate(
                mel=batch["mel"].to(device),
                mel_lens=batch["mel_lens"].to(device),
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
            )
            for key, text in zip(batch["keys"], texts):
                out.write(f"{key} {' '.join(text.split())}\n")
            out.flush()
            bar.update(len(texts))
    elapsed = time.perf_counter() - start
    stats = {
        "utterances": len(todo),
        "seconds": elapsed,
        "rtf": elapsed / audio_seconds if audio_seconds else 0.0,
    }
    logger.info("decoded %d utterances in %.1f s (RTF %.3f)", len(todo), elapsed, stats["rtf"])
    return stats
