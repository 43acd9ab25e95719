"""Transcribe recordings with a trained WeST model; prints `name<TAB>text` lines.

    west-transcribe --model_dir exp/run/checkpoint-600 a.wav b.flac
    west-transcribe --model_dir exported/ --output hyp.txt recordings/ data/test/wav.scp

Inputs are audio files (wav, flac, mp3, m4a/aac, ogg/opus, webm, ...: anything libsndfile
or PyAV's FFmpeg reads) or video files (their first audio track), at any rate, mono or
stereo, any length (long ones are cut at pauses); folders (every audio or video file inside,
by suffix, recursive, sorted); or `.scp` lists
(`<key> <path>` lines; their lines are printed with the key).

The model decodes as its recipe did (beam, joint CTC weight, token limits: its
decode_conf, which west-train saves); flags such as --beam and --ctc_weight override it.
"""

from __future__ import annotations

import argparse
import logging
import sys

import torch

from west.bin.recognize import add_decoding_flags
from west.data.audio import AudioError, audio_info
from west.data.dataset import DataError
from west.data.inputs import find_inputs
from west.loader import load

logger = logging.getLogger("west.transcribe")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("inputs", nargs="+", help="audio or video files, folders, or .scp lists")
    p.add_argument(
        "--model_dir",
        required=True,
        help="checkpoint folder written by west-train, or a folder written by west-export",
    )
    p.add_argument("--output", help="write the lines here instead of to stdout")
    p.add_argument(
        "--beam",
        "--num_beams",
        dest="num_beams",
        type=int,
        help="beam size (1 = greedy) [default: the model's decode_conf]",
    )
    add_decoding_flags(p)
    p.add_argument("--batch_size", type=int, default=8, help="windows decoded together")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument(
        "--skip_bad",
        action="store_true",
        help="warn about and skip bad inputs (missing, not audio, silent) instead of stopping",
    )
    p.add_argument("--llm_model_name_or_path", help="use this LLM instead of the saved one")
    p.add_argument("--whisper_model_name_or_path", help="use this encoder instead")
    return p


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Check every input before the (slow) model load: a typo should not cost minutes.
    try:
        inputs = find_inputs(args.inputs)
    except DataError as e:
        logger.error("%s", e)
        return 1
    good, bad = [], 0
    for x in inputs:
        try:
            audio_info(x.path)
            good.append(x)
        except AudioError as e:
            message = str(e) if x.where == x.path else f"{x.where}: {e}"
            if not args.skip_bad:
                logger.error("%s (pass --skip_bad to skip bad inputs)", message)
                return 1
            logger.warning("skipping %s", message)
            bad += 1
    if not good:
        logger.error("no usable input among %d", len(inputs))
        return 1
    try:
        model = load(
            args.model_dir,
            device=args.device,
            dtype=args.dtype,
            num_beams=args.num_beams,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            engine=args.engine,
            ctc_weight=args.ctc_weight,
            max_tokens_per_second=args.max_tokens_per_second,
            llm_model_name_or_path=args.llm_model_name_or_path,
            whisper_model_name_or_path=args.whisper_model_name_or_path,
        )
    except (FileNotFoundError, ValueError) as e:  # no config, or weights that do not fit
        logger.error("%s", e)
        return 1
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for t in model.stream(
            [x.path for x in good], names=[x.name for x in good], skip_bad=args.skip_bad
        ):
            if t.error:
                bad += 1  # silent: found only once the audio is read
                continue
            out.write(f"{t.name}\t{t.text}\n")
            out.flush()
    except AudioError as e:
        logger.error("%s (pass --skip_bad to skip bad inputs)", e)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
    if bad:
        logger.warning("skipped %d bad input(s) of %d", bad, len(inputs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
