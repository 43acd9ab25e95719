#!/usr/bin/env python3
"""Normalise the training targets of Kaldi data dirs: rewrites `text` and `data.jsonl`.

    tools/normalize_text.py --lower DATA_DIR...           (LibriSpeech: lower case)
    tools/normalize_text.py --remove_spaces DATA_DIR...   (AISHELL: drop word segmentation)

The corpus's own transcripts are kept in DATA_DIR/text.orig and always normalised from
there, so a second run gives the same result.
"""

import argparse
import sys

from west.data.dataset import DataError
from west.data.kaldi import TEXT_NORMALIZERS, normalize_data_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("data_dirs", nargs="+", metavar="DATA_DIR")
    for name in TEXT_NORMALIZERS:
        p.add_argument(f"--{name}", action="append_const", const=name, dest="normalizers")
    args = p.parse_args(argv)
    if not args.normalizers:
        p.error(f"give at least one of {', '.join('--' + n for n in TEXT_NORMALIZERS)}")
    for d in args.data_dirs:
        try:
            n = normalize_data_dir(d, args.normalizers)
        except (DataError, OSError) as e:
            print(f"normalize_text.py: error: {e}", file=sys.stderr)
            return 1
        print(
            f"normalize_text.py: {d}: {n} transcripts ({', '.join(args.normalizers)})",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
