#!/usr/bin/env python3
"""Kaldi data dirs (+ data.jsonl) from audio lists and transcripts, reporting what is unpaired.

    tools/make_data.py --text TRANSCRIPTS [--text ...] [--speaker_regex RE] \\
        OUT_DIR=AUDIO_LIST [OUT_DIR=AUDIO_LIST ...]

AUDIO_LIST holds one audio path per line (as `find` prints them); an utterance's key is
its file name without extension. Transcripts are `<key> <transcript>` lines and may cover
several sets: those with audio in none of the given sets are counted once. See
west/data/kaldi.py for the files written.
"""

import argparse
import sys

from west.data.dataset import DataError
from west.data.kaldi import (
    make_data_dirs,
    pair,
    read_audio_list,
    read_transcripts,
    speaker_function,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 2)[2],
    )
    p.add_argument("sets", nargs="+", metavar="OUT_DIR=AUDIO_LIST")
    p.add_argument("--text", action="append", required=True, help="transcript file (repeatable)")
    p.add_argument(
        "--speaker_regex",
        help="speaker = first group (or the match) of this regex searched in the key "
        "(default: each utterance its own speaker)",
    )
    args = p.parse_args(argv)
    sets = {}
    for item in args.sets:
        out_dir, sep, audio_list = item.partition("=")
        if not sep or not out_dir or not audio_list:
            p.error(f"{item!r}: expected OUT_DIR=AUDIO_LIST")
        sets[out_dir] = audio_list
    try:
        pairing = pair(
            {out_dir: read_audio_list(lst) for out_dir, lst in sets.items()},
            read_transcripts(args.text),
            speaker_function(args.speaker_regex),
        )
        for s in pairing.sets:
            if not s.entries:
                raise DataError(
                    f"{s.out_dir}: no utterance has both audio ({sets[str(s.out_dir)]}) and a "
                    f"transcript ({', '.join(args.text)}); is the corpus where you said?"
                )
        make_data_dirs(pairing)
    except (DataError, OSError) as e:
        print(f"make_data.py: error: {e}", file=sys.stderr)
        return 1
    for line in pairing.report():
        print(f"make_data.py: {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
