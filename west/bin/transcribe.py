"""Transcribe recordings with a trained WeST model; prints `name<TAB>text` lines, or
writes subtitles and timed transcripts.

    west-transcribe --model_dir exp/run/checkpoint-600 a.wav b.flac
    west-transcribe --model_dir exported/ --output hyp.txt recordings/ data/test/wav.scp
    west-transcribe --model_dir exported/ --format srt --output_dir subs/ recordings/
    west-transcribe --model_dir exported/ --format json talks/ > talks.jsonl

Inputs are audio files (wav, flac, mp3, m4a/aac, ogg/opus, webm, ...: anything libsndfile
or PyAV's FFmpeg reads) or video files (their first audio track), at any rate, mono or
stereo, any length (long ones are cut at pauses); folders (every audio or video file inside,
by suffix, recursive, sorted); or `.scp` lists
(`<key> <path>` lines; their lines are printed with the key).

--format (west.subtitles has the details):
  lines  (default) `name<TAB>text`, a line per input, to stdout or --output;
  txt    the text, a line per window the recording was cut into;
  tsv    `start<TAB>end<TAB>text` cues, times in milliseconds, with a header line;
  srt, vtt  subtitles: at most 2 lines of 42 characters and 7 s a cue;
  json   text, duration, segments (start, end, text) and their words (word, start, end,
         confidence), times in seconds.
With --output_dir, each input gets its own file there, DIR/<name>.<format>, <name> being the
file's name without its suffix (an .scp entry's: its key). Without it, txt, tsv, srt and vtt
take one input, written to stdout or --output; json writes a JSON object per input per line
(JSON lines, each with its "name").

tsv, srt, vtt and json time words when the model has a CTC branch (its posteriors aligned to
the transcript: west.timestamps); a model without one has only segment times (the windows),
which these formats then use, with a warning.

The model decodes as its recipe did (beam, joint CTC weight, token limits: its
decode_conf, which west-train saves); flags such as --beam and --ctc_weight override it.
--hotwords names.txt (or --hotwords "Okafor,Lisbon") biases every input towards those names
and terms (west.models.context).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import torch

from west.bin.recognize import add_decoding_flags, add_hotword_flags, add_precision_flags
from west.data.audio import AudioError, audio_info
from west.data.dataset import DataError
from west.data.inputs import AudioInput, find_inputs
from west.loader import load
from west.models.context import read_hotwords
from west.subtitles import FORMATS, record, write
from west.transcriber import SEGMENTATIONS

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
        "--format",
        default="lines",
        choices=["lines", *FORMATS],
        help="what to write (see above) [default: lines, `name<TAB>text`]",
    )
    p.add_argument(
        "--output_dir", help="write one file per input here, <name>.<format> (not for lines)"
    )
    p.add_argument(
        "--beam",
        "--num_beams",
        dest="num_beams",
        type=int,
        help="beam size (1 = greedy) [default: the model's decode_conf]",
    )
    add_decoding_flags(p)
    add_hotword_flags(p)
    p.add_argument("--batch_size", type=int, default=8, help="windows decoded together")
    p.add_argument(
        "--segmentation",
        default="pauses",
        choices=SEGMENTATIONS,
        help="how long recordings are cut: pauses (windows of at most 28 s covering it all, "
        "cut at the quietest point) or vad (utterances, cut where a person pauses, exactly as "
        "live transcription cuts them: the same texts as a live stream's finals)",
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_precision_flags(p)
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
    problem, files = _output_files(args, good)
    if problem:
        logger.error("%s", problem)
        return 1
    try:
        hotwords = read_hotwords(args.hotwords)
    except (OSError, UnicodeDecodeError) as e:
        logger.error("--hotwords: %s", e)
        return 1
    try:
        model = load(
            args.model_dir,
            device=args.device,
            dtype=args.dtype,
            quantize=args.quantize,
            num_beams=args.num_beams,
            batch_size=args.batch_size,
            max_new_tokens=args.max_new_tokens,
            engine=args.engine,
            ctc_weight=args.ctc_weight,
            max_tokens_per_second=args.max_tokens_per_second,
            segmentation=args.segmentation,
            hotwords=hotwords,
            hotword_bonus=args.hotword_bonus,
            context_route=args.context_route,
            llm_model_name_or_path=args.llm_model_name_or_path,
            whisper_model_name_or_path=args.whisper_model_name_or_path,
        )
    except (FileNotFoundError, ValueError) as e:  # no config, or weights that do not fit
        logger.error("%s", e)
        return 1
    words = args.format in TIMED and model.has_word_timestamps
    if args.format in TIMED and not words:
        logger.warning(
            "%s: no CTC branch, so no word timestamps: %s times are the segments' (the "
            "windows each recording is cut into at pauses)",
            args.model_dir,
            args.format,
        )
    if args.output_dir:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for t, path in zip(
            model.stream(
                [x.path for x in good],
                names=[x.name for x in good],
                skip_bad=args.skip_bad,
                word_timestamps=words,
            ),
            files,
        ):
            if t.error:
                bad += 1  # silent: found only once the audio is read
                continue
            if args.format == "lines":
                out.write(f"{t.name}\t{t.text}\n")
            elif args.format == "json" and path is None:
                line = {"name": t.name, **record(t.text, t.segments, t.duration)}
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
            elif path is None:
                out.write(write(args.format, t.text, t.segments, t.duration))
            else:
                path.write_text(write(args.format, t.text, t.segments, t.duration), "utf-8")
                logger.info("%s -> %s", t.name, path)
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


TIMED = ("tsv", "srt", "vtt", "json")  # formats with times: word times when there are any


def _output_files(args, inputs: list[AudioInput]) -> tuple[str | None, list[Path | None]]:
    """Where each input's result goes with --output_dir (None: to stdout or --output); or
    what is wrong with the output flags."""
    fmt = args.format
    if not args.output_dir:
        if fmt in ("lines", "json") or len(inputs) == 1:
            return None, [None] * len(inputs)
        return (
            f"--format {fmt} writes a file per input: give --output_dir ({len(inputs)} inputs)",
            [],
        )
    if fmt == "lines":
        return "--output_dir needs a --format of its own (txt, tsv, srt, vtt or json)", []
    if args.output:
        return "give --output or --output_dir, not both", []
    folder, files, seen = Path(args.output_dir), [], {}
    for x in inputs:
        name = Path(x.path).stem if x.name == x.path else x.name.replace("/", "_")
        path = folder / f"{name}.{fmt}"
        if path in seen:
            return (
                f"{seen[path]} and {x.where} would both be written to {path}; rename one, or "
                "list them in an .scp file with keys of their own",
                [],
            )
        seen[path] = x.where
        files.append(path)
    return None, files


if __name__ == "__main__":
    sys.exit(main())
