"""Export a trained WeST model as a self-contained folder with a model card.

    west-export --model_dir exp/run/checkpoint-600 --output models/my-asr

Writes model.safetensors (projector, LoRA), west_config.json and README.md; the encoder
and LLM are named there, not copied. Use it with `west-transcribe --model_dir DIR` or
`west.load(DIR)`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from west.export import export_model


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--model_dir", required=True, help="checkpoint folder written by west-train")
    p.add_argument("--output", required=True, help="folder to write")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        out = export_model(args.model_dir, args.output, overwrite=args.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        logging.getLogger("west.export").error("%s", e)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
