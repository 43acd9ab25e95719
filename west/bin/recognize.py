"""Decode a data list with a trained WeST model; writes `key text` lines.

    west-recognize --model_dir exp/run/checkpoint-600 --data_path test.jsonl --result_path text
    west-recognize --llm_model_name_or_path Qwen2-1.5B-Instruct --whisper_model_name_or_path tiny \\
        --projector_model_path exp/run/checkpoint-600/model.safetensors \\
        --data_path test.jsonl --result_path result.txt --num_beams 5
    torchrun --standalone --nproc_per_node 4 -m west.bin.recognize --model_dir ... \
        --data_path test.jsonl --result_path text     # 4 processes, one shard each

Utterances longer than --max_speech_seconds are cut at pauses and their window texts
joined. Hotwords (--hotwords, and each utterance's "context" list in a jsonl data list) are
decoded with a bonus in the search and, for a model trained with context_conf, in the prompt. Decoding settings not given (beam, CTC weight, engine, token limits) are the
model's own (its decode_conf, saved by west-train from its recipe's `decode:` mapping).
`--config conf.yaml` reads the yaml's `decode:` mapping (flag: value) as defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from datetime import timedelta

import torch

from west import distributed
from west.config import ENGINES, DecodeConf
from west.data.dataset import read_data, validate
from west.decode import recognize
from west.loader import load_model
from west.models.context import CONTEXT_ROUTES, read_hotwords
from west.models.quantize import QUANTIZATIONS
from west.utils import decode_argv

logger = logging.getLogger("west.recognize")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config",
        help="yaml whose `decode:` mapping (flag: value) gives defaults for these flags; "
        "flags given here win; its other keys (west-train's) are ignored",
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
        help="beam size(s): a sweep loads the model once, e.g. --num_beams 1 3 5 "
        "[default: the model's decode_conf]",
    )
    add_decoding_flags(p)
    add_hotword_flags(p)
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument(
        "--max_speech_seconds",
        type=float,
        default=30.0,
        help="longer utterances are cut at pauses into windows of at most min(28, this) s, "
        "decoded, and their texts joined on one line",
    )
    p.add_argument("--skip_bad_data", action="store_true")
    p.add_argument(
        "--cut_long_audio",
        action="store_true",
        help="cut audio longer than --max_speech_seconds to that length (its end is lost) "
        "instead of decoding it in windows cut at pauses",
    )
    p.add_argument(
        "--device",
        help="default: cuda:LOCAL_RANK when there is a GPU, else cpu; `cuda` under torchrun "
        "means each rank's own GPU",
    )
    add_precision_flags(p)
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    return p


def pick_device(device: str | None, world_size: int) -> str:
    """This process's device: under torchrun, rank LOCAL_RANK's own GPU."""
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and world_size > 1:
        device = f"cuda:{local_rank}"
    if torch.device(device).type == "cuda" and torch.device(device).index is not None:
        torch.cuda.set_device(torch.device(device))
    return device


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Flags, after the `decode:` mapping of a `--config` yaml (flags given win)."""
    parser = get_parser()
    try:
        argv = decode_argv(argv, {a.dest for a in parser._actions})
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    args = parser.parse_args(argv)
    if args.num_beams and len(args.num_beams) > 1 and "{beam}" not in args.result_path:
        parser.error("several --num_beams need a --result_path with {beam} in it")
    if not args.model_dir and not (args.llm_model_name_or_path and args.whisper_model_name_or_path):
        raise SystemExit(
            "give --model_dir, or --llm_model_name_or_path and --whisper_model_name_or_path"
        )
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else list(argv))
    world_size = distributed.world_size()
    rank = int(os.environ.get("RANK", 0))
    where = f" rank {rank}/{world_size}" if world_size > 1 else ""
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s %(levelname)s{where} %(name)s: %(message)s",
    )
    if world_size > 1:
        # gloo only for barriers; a rank done early waits for the slowest one (hours).
        torch.distributed.init_process_group("gloo", timeout=timedelta(hours=24))
    try:
        decode(args, pick_device(args.device, world_size))
    finally:
        if world_size > 1:
            torch.distributed.destroy_process_group()


def decode(args: argparse.Namespace, device: str) -> None:
    model = load_model(
        args.model_dir,
        device=device,
        dtype=getattr(torch, args.dtype),
        quantize=args.quantize,
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
        long_audio="cut" if args.cut_long_audio else "keep",
    )
    try:
        hotwords = read_hotwords(args.hotwords)
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(f"west-recognize: --hotwords: {e}") from None
    d = decoding(args, model.config.decode, model.ctc is not None)
    logger.info(
        "decoding with CTC weight %g, engine %s, at most %d tokens a window and %g a second "
        "(the model's decode_conf, where no flag says)",
        d.ctc_weight,
        d.engine,
        d.max_new_tokens,
        d.max_tokens_per_second,
    )
    for beam in args.num_beams or [d.num_beams]:
        recognize(
            model,
            utts,
            args.result_path.format(beam=beam),
            args.batch_size,
            beam,
            d.max_new_tokens,
            args.num_workers,
            d.ctc_weight,
            engine=d.engine,
            max_speech_seconds=args.max_speech_seconds,
            max_tokens_per_second=d.max_tokens_per_second,
            hotwords=hotwords,
            hotword_bonus=d.hotword_bonus,
            context_route=args.context_route,
        )


def add_precision_flags(p: argparse.ArgumentParser) -> None:
    """--dtype and --quantize: the form the weights decode in. Shared by west-recognize,
    west-transcribe and west-serve."""
    p.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="bfloat16 on a GPU, or on a CPU with native bf16 (AVX512-BF16, AMX) [default: "
        "float32]",
    )
    p.add_argument(
        "--quantize",
        default="none",
        choices=QUANTIZATIONS,
        help="int8: an int8 copy of the LLM's Linear weights for the decoding steps (CPU, "
        "float32 only; LoRA merged first; west.models.quantize): a step about twice as fast, "
        "WER and speed measured in README.md, 'Decoding on CPU' [default: none]",
    )


def add_decoding_flags(p: argparse.ArgumentParser) -> None:
    """The flags that override a model's decode_conf (west.config.DecodeConf); all default
    to None, the model's own. Shared by west-recognize, west-transcribe and west-serve."""
    p.add_argument(
        "--ctc_weight",
        type=float,
        help="joint CTC / LLM decoding with this CTC weight, 0 for the LLM alone [default: "
        "the model's decode_conf; 0.5 for a model with a CTC branch that has none]",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        help="west: WeST's batched search; hf: transformers' generate, which also applies "
        "the LLM's generation_config (as the 2024 reference did) [default: the model's]",
    )
    p.add_argument(
        "--max_new_tokens", type=int, help="per window of at most 28 s [default: the model's]"
    )
    p.add_argument(
        "--max_tokens_per_second",
        type=float,
        help="tokens per second of audio (+ 10) a window may get, a bound against runaway "
        "decoding [default: the model's, 12]",
    )
    p.add_argument(
        "--hotword_bonus",
        type=float,
        help="what each matched token of a hotword adds to a hypothesis's log-probability "
        "in the search; 0: hotwords go to the prompt alone [default: the model's, 2]",
    )


def add_hotword_flags(p: argparse.ArgumentParser) -> None:
    """--hotwords and --context_route. Shared by west-recognize, west-transcribe and
    west-serve."""
    p.add_argument(
        "--hotwords",
        help="names and terms to expect: a file (one word or phrase per line, # comments) "
        "or the words, comma-separated; west-recognize also reads each utterance's own from "
        'its data list\'s "context" (a list of strings)',
    )
    p.add_argument(
        "--context_route",
        default="auto",
        choices=CONTEXT_ROUTES,
        help="where hotwords go: the prompt (a model trained with context_conf), the search "
        "(a bonus per matched token), both, or auto: the prompt for a model trained so, the "
        "search when --hotword_bonus > 0 [default: auto]",
    )


def decoding(args: argparse.Namespace, conf: DecodeConf, has_ctc: bool) -> DecodeConf:
    """The model's decode_conf with the flags that were given (add_decoding_flags) applied."""
    return conf.resolve(
        has_ctc,
        ctc_weight=args.ctc_weight,
        engine=args.engine,
        max_new_tokens=args.max_new_tokens,
        max_tokens_per_second=args.max_tokens_per_second,
        hotword_bonus=args.hotword_bonus,
    )


if __name__ == "__main__":
    main()
