"""Decode a data list with a trained WeST model; writes `key text` lines.

    west-recognize --model_dir exp/run/checkpoint-600 --data_path test.jsonl --result_path text
    west-recognize --llm_model_name_or_path Qwen2-1.5B-Instruct --whisper_model_name_or_path tiny \\
        --projector_model_path exp/run/checkpoint-600/model.safetensors \\
        --data_path test.jsonl --result_path result.txt --num_beams 5
"""

from __future__ import annotations

import argparse
import logging

import torch

from west.api import load_model, recognize
from west.data.dataset import read_data, validate


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model_dir", help="checkpoint folder written by west-train (has west_config.json)"
    )
    p.add_argument("--llm_model_name_or_path")
    p.add_argument("--llm_gguf_file")
    p.add_argument("--whisper_model_name_or_path")
    p.add_argument("--projector_model_path")
    p.add_argument("--data_path", required=True, help="jsonl file or Kaldi data dir")
    p.add_argument(
        "--result_path",
        required=True,
        help="output file; with several --num_beams it must contain {beam}",
    )
    p.add_argument(
        "--num_beams",
        type=int,
        nargs="+",
        default=[1],
        help="beam size(s): a sweep loads the model once, e.g. --num_beams 1 3 5",
    )
    p.add_argument(
        "--ctc_weight",
        type=float,
        default=0.0,
        help="joint CTC / LLM decoding with this CTC weight (a model with a CTC branch)",
    )
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--max_new_tokens", type=int, default=200)
    p.add_argument("--max_speech_seconds", type=float, default=30.0)
    p.add_argument("--skip_bad_data", action="store_true")
    p.add_argument(
        "--cut_long_audio",
        action="store_true",
        help="cut audio longer than --max_speech_seconds instead of refusing it "
        "(west-transcribe splits long recordings at pauses instead)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--num_workers", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> None:
    parser = get_parser()
    args = parser.parse_args(argv)
    if len(args.num_beams) > 1 and "{beam}" not in args.result_path:
        parser.error("several --num_beams need a --result_path with {beam} in it")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if not args.model_dir and not (args.llm_model_name_or_path and args.whisper_model_name_or_path):
        raise SystemExit(
            "give --model_dir, or --llm_model_name_or_path and --whisper_model_name_or_path"
        )
    model = load_model(
        args.model_dir,
        device=args.device,
        dtype=getattr(torch, args.dtype),
        llm_model_name_or_path=args.llm_model_name_or_path,
        llm_gguf_file=args.llm_gguf_file,
        whisper_model_name_or_path=args.whisper_model_name_or_path,
        projector_model_path=args.projector_model_path,
    )
    utts = validate(
        read_data(args.data_path),
        max_seconds=args.max_speech_seconds,
        need_text=False,
        skip_bad=args.skip_bad_data,
        cut_long=args.cut_long_audio,
    )
    for beam in args.num_beams:
        recognize(
            model,
            utts,
            args.result_path.format(beam=beam),
            args.batch_size,
            beam,
            args.max_new_tokens,
            args.num_workers,
            args.ctc_weight,
        )


if __name__ == "__main__":
    main()
