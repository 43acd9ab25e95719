"""What a benchmark runs on: its settings, the models (real or tiny random) and the speech.

Tiny random models come from the tests' fixtures (tests/tiny_models.py) with SmolLM2's
tokenizer; real ones from the folder that examples/mini/local/prepare_models.py writes;
speech, unless a data list is given, from espeak-ng (examples/mini/local/espeak.py). Those
two folders go on sys.path here, the benchmarks' one place for it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for _folder in (ROOT / "tests", ROOT / "examples" / "mini" / "local"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import espeak  # noqa: E402  (the sys.path entries above find these three)
from gguf_llm import default_smollm2_gguf, load_gguf_tokenizer  # noqa: E402
from prepare_models import LLM_NAME, WHISPER_NAME  # noqa: E402

from west.config import ModelArguments  # noqa: E402
from west.models.build import build_model  # noqa: E402
from west.models.speech_llm import SpeechLLM  # noqa: E402


@dataclass
class BenchConfig:
    whisper: str | None = None  # openai-whisper .pt (or HF folder); None: tiny random models
    llm: str | None = None
    checkpoint: str | None = None  # trained WeST checkpoint (projector/LoRA), for real WERs
    data: str | None = None  # jsonl; None: espeak-ng utterances are synthesised
    workdir: str | None = None
    num_utts: int = 12  # training uses them all (steps x batch_size, repeated if fewer)
    decode_utts: int = 8  # decoding uses the first ones: the reference's beam search is slow
    steps: int = 3
    batch_size: int = 4
    decode_batch_size: int = 8
    beams: int = 5
    max_new_tokens: int = 32
    model_max_length: int = 512
    projector_hidden_size: int = 2048
    seed: int = 0
    beam_batch1: bool = False  # also decode beam search at batch 1 (hypothesis check)
    threads: int = 1  # torch CPU threads; 0 keeps torch's default (all cores)
    tiny: bool = field(init=False, default=False)


def default_workdir() -> Path:
    """Tiny models, synthesised speech and the cache live here between runs."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "west" / "benchmark"


def real_models(models_dir: Path) -> tuple[str, str]:
    """(Whisper checkpoint, LLM folder) inside a folder written by prepare_models.py."""
    return str(models_dir / WHISPER_NAME), str(models_dir / LLM_NAME)


def build_tiny_models(out: Path) -> tuple[str, str]:
    """Random Whisper-shaped encoder and 2-layer Qwen2 with SmolLM2's tokenizer (reused if present)."""
    from tiny_models import write_tiny_llm, write_tiny_whisper

    whisper, llm = out / "tiny_whisper.pt", out / "tiny_llm"
    if not whisper.is_file():
        write_tiny_whisper(whisper)
    if not (llm / "config.json").is_file():
        write_tiny_llm(load_gguf_tokenizer(default_smollm2_gguf()), llm, "qwen2")
    return str(whisper), str(llm)


def synthesize_data(out: Path, n: int, seed: int = 0) -> Path:
    """`n` espeak-ng utterances of 1 to 3 sentences (about 2 to 12 s) and their data.jsonl."""
    if not espeak.have_espeak():
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng); give --data")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        text = " ".join(rng.sample(espeak.SENTENCES, 1 + i % 3))
        wav = out / f"bench{i:04d}.wav"
        if not wav.is_file():
            espeak.write_speech(text, wav, "en-us", rng.choice([130, 150, 170]))
        lines.append(json.dumps({"key": f"bench{i:04d}", "wav": str(wav), "txt": text}))
    path = out / "data.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def load_bench_model(cfg: BenchConfig) -> SpeechLLM:
    overrides = {
        "whisper_model_name_or_path": cfg.whisper,
        "llm_model_name_or_path": cfg.llm,
        "freeze_encoder": True,
        "pad_to_30s": False,  # the datasets decide the padding
    }
    if cfg.checkpoint:
        config = ModelArguments.load(cfg.checkpoint)
        overrides["projector_model_path"] = str(Path(cfg.checkpoint) / "model.safetensors")
        overrides = {k: v for k, v in overrides.items() if v is not None}
    else:
        overrides["projector_hidden_size"] = cfg.projector_hidden_size
        config = ModelArguments()
    torch.manual_seed(cfg.seed)
    return build_model(dataclasses.replace(config, **overrides)).eval()
