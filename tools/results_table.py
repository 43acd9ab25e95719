#!/usr/bin/env python3
"""Markdown results tables from decode folders (see west/scoring/table.py for the layout).

Usage: tools/results_table.py [--beam N|best] [--metric WER|CER|TESTSET=METRIC ...]
                              [--keep_order] [--output FILE] EXP_DIR...

``--metric CER`` labels every beam-table row CER; ``--metric aishell=CER`` only those of the
``aishell`` test set (repeat it for each), so one table can hold a CER and a WER test set.
Decodes scored with a biasing list (``west-score --biasing``) get a third table: WER, B-WER
and U-WER side by side (B-CER and U-CER for a CER test set).
Runs from a checkout too: without an installed ``west`` it uses the one beside this script.
"""

import argparse
import sys
from pathlib import Path

try:
    import west  # noqa: F401
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from west.scoring.table import (  # noqa: E402
    ResultsError,
    beam_table,
    biasing_table,
    load_experiment,
    natural_key,
    results_table,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("exp_dirs", nargs="+", metavar="EXP_DIR")
    p.add_argument(
        "--beam",
        default="1",
        help="beam size shown in the main table, or 'best'; a test set not decoded at this "
        "beam shows its best beam, marked (default: 1)",
    )
    p.add_argument(
        "--metric",
        action="append",
        default=[],
        metavar="[TESTSET=]METRIC",
        help="row label of the beam table, for every test set or for TESTSET only; "
        "repeatable (default: WER)",
    )
    p.add_argument(
        "--keep_order",
        action="store_true",
        help="number experiments in command-line order (default: sorted by folder path)",
    )
    p.add_argument("--output", help="also write the tables to this file")
    args = p.parse_args(argv)
    if args.beam != "best" and not args.beam.isdigit():
        p.error(f"--beam expects a number or 'best', got '{args.beam}'")
    beam = None if args.beam == "best" else int(args.beam)
    metric, metrics = "WER", {}
    for value in args.metric:
        testset, sep, name = value.rpartition("=")
        if not name or (sep and not testset):
            p.error(f"--metric expects METRIC or TESTSET=METRIC, got '{value}'")
        if sep:
            metrics[testset] = name
        else:
            metric = name

    dirs = args.exp_dirs if args.keep_order else sorted(args.exp_dirs, key=natural_key)
    try:
        experiments = [load_experiment(d) for d in dirs]
    except (ResultsError, OSError) as e:
        print(f"results_table.py: error: {e}", file=sys.stderr)
        return 1
    for e in experiments:
        if not e.decodes:
            print(f"results_table.py: warning: {e.path}: no decode_*_beam*/wer", file=sys.stderr)

    tables = [results_table(experiments, beam), beam_table(experiments, metric, metrics)]
    biasing = biasing_table(experiments, beam, metric, metrics)
    text = "\n\n".join(tables + ([biasing] if biasing else [])) + "\n"
    print(text, end="")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
